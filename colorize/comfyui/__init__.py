"""ColorMNet inside ComfyUI: V3 nodes over the same engine as the ``colorize`` command.

Layout (imports run one way, top to bottom):

* ``cli`` / ``installer``: ``colorize comfyui install|uninstall COMFYUI_DIR``; never import ComfyUI.
* ``nodes``: the node classes; the only module that imports ComfyUI's API
  (``comfy_api.latest``, ``comfy.utils``, ``comfy.model_management``, ``folder_paths``), and only
  the loader file that ComfyUI runs imports it.
* ``models`` / ``work`` / ``images``: ComfyUI-free pieces the nodes call: the model cache, the
  frame-batch and video runs, and IMAGE tensor <-> RGB array conversion.
"""
