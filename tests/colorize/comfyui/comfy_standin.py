"""A minimal stand-in for the few ComfyUI APIs the colorize nodes call.

Written from what the nodes use (not from ComfyUI's code): ``comfy_api.latest`` (the V3 schema
classes as plain records, ``ComfyExtension``, ``InputImpl.VideoFromFile``), ``comfy.utils``
(``ProgressBar``, recording every update), ``comfy.model_management`` (device, interrupt flag,
model loading), ``comfy.model_patcher`` and ``folder_paths``. :func:`install` puts them into
``sys.modules`` and returns a :class:`Comfy` handle with what the nodes did.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class InterruptProcessingException(BaseException):
    """Stands for ComfyUI's interrupt exception (a BaseException there too)."""


@dataclass
class Comfy:
    """State of the stand-in: progress updates, interrupt trigger, loads, folders."""

    root: Path
    progress: list[tuple[int, int]] = field(default_factory=list)
    bars: int = 0
    loads: list[Any] = field(default_factory=list)
    patchers: list[Any] = field(default_factory=list)
    interrupt_after: int | None = None     # raise at the check after this many progress updates
    interrupt_checks: int = 0
    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    on_progress: Callable[[int, int], None] | None = None

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def temp_dir(self) -> Path:
        return self.root / "temp"

    @property
    def input_dir(self) -> Path:
        return self.root / "input"


def _record_class(name: str, **defaults: Any) -> type:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.__dict__.update(defaults)
        self.__dict__.update(kwargs)

    return type(name, (), {"__init__": __init__})


def _io_type(io_type: str) -> type:
    return type(io_type, (), {"io_type": io_type, "Input": _record_class(f"{io_type}.Input"),
                              "Output": _record_class(f"{io_type}.Output")})


def build(root: Path) -> Comfy:
    comfy = Comfy(root)
    comfy.models_dir.mkdir(parents=True, exist_ok=True)
    comfy.temp_dir.mkdir(parents=True, exist_ok=True)
    comfy.input_dir.mkdir(parents=True, exist_ok=True)

    # ---- comfy_api.latest
    io = types.SimpleNamespace()
    io.Schema = _record_class("Schema")

    class NodeOutput:
        def __init__(self, *args: Any, ui: Any = None) -> None:
            self.args = args
            self.ui = ui

    class ComfyNode:
        @classmethod
        def define_schema(cls) -> Any:  # pragma: no cover - overridden
            raise NotImplementedError

    io.NodeOutput = NodeOutput
    io.ComfyNode = ComfyNode
    io.Custom = _io_type
    for name in ("Boolean", "Combo", "Int", "Float", "String", "Image", "Video"):
        setattr(io, name, _io_type(name.upper()))

    class ComfyExtension:
        async def get_node_list(self) -> list:  # pragma: no cover - overridden
            return []

    class VideoFromFile:
        def __init__(self, file: Any) -> None:
            self.file = file

        def get_stream_source(self) -> Any:
            return self.file

        def save_to(self, path: str, **kwargs: Any) -> None:
            Path(path).write_bytes(Path(self.file).read_bytes())

    latest = types.ModuleType("comfy_api.latest")
    latest.io = io
    latest.ComfyExtension = ComfyExtension
    latest.InputImpl = types.SimpleNamespace(VideoFromFile=VideoFromFile)
    comfy_api = types.ModuleType("comfy_api")
    comfy_api.latest = latest

    # ---- comfy.utils / comfy.model_management / comfy.model_patcher
    utils = types.ModuleType("comfy.utils")

    class ProgressBar:
        def __init__(self, total: int, node_id: Any = None) -> None:
            self.total = total
            comfy.bars += 1

        def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
            if total is not None:
                self.total = total
            comfy.progress.append((value, self.total))
            if comfy.on_progress is not None:
                comfy.on_progress(value, self.total)

    utils.ProgressBar = ProgressBar

    management = types.ModuleType("comfy.model_management")

    def throw_exception_if_processing_interrupted() -> None:
        comfy.interrupt_checks += 1
        if comfy.interrupt_after is not None and len(comfy.progress) > comfy.interrupt_after:
            comfy.interrupt_after = None
            raise InterruptProcessingException()

    def get_torch_device():
        import torch

        return torch.device("cpu")

    management.InterruptProcessingException = InterruptProcessingException
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    management.get_torch_device = get_torch_device
    management.unet_offload_device = get_torch_device
    management.load_models_gpu = lambda models, **kwargs: comfy.loads.append((list(models), kwargs))

    patcher = types.ModuleType("comfy.model_patcher")

    class ModelPatcher:
        def __init__(self, model: Any, load_device: Any, offload_device: Any) -> None:
            self.model = model
            comfy.patchers.append(self)

    patcher.ModelPatcher = ModelPatcher
    package = types.ModuleType("comfy")
    package.utils, package.model_management, package.model_patcher = utils, management, patcher

    # ---- folder_paths
    folders = types.ModuleType("folder_paths")
    folders.models_dir = str(comfy.models_dir)
    folders.folder_names_and_paths = {}

    def get_folder_paths(name: str) -> list[str]:
        return list(folders.folder_names_and_paths[name][0])

    def get_filename_list(name: str) -> list[str]:
        paths, suffixes = folders.folder_names_and_paths[name]
        found = []
        for folder in paths:
            if os.path.isdir(folder):
                found += [n for n in sorted(os.listdir(folder)) if os.path.splitext(n)[1] in suffixes]
        return found

    def get_full_path(name: str, filename: str) -> str | None:
        for folder in folders.folder_names_and_paths[name][0]:
            candidate = os.path.join(folder, filename)
            if os.path.isfile(candidate):
                return candidate
        return None

    folders.get_folder_paths = get_folder_paths
    folders.get_filename_list = get_filename_list
    folders.get_full_path = get_full_path
    folders.get_temp_directory = lambda: str(comfy.temp_dir)
    folders.get_input_directory = lambda: str(comfy.input_dir)

    comfy.modules = {
        "comfy_api": comfy_api, "comfy_api.latest": latest, "comfy": package, "comfy.utils": utils,
        "comfy.model_management": management, "comfy.model_patcher": patcher, "folder_paths": folders,
    }
    return comfy


def install(root: Path, monkeypatch: Any) -> tuple[Comfy, types.ModuleType]:
    """Put the stand-in into ``sys.modules`` and import a fresh ``colorize.comfyui.nodes``."""
    import importlib

    comfy = build(root)
    for name, module in comfy.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "colorize.comfyui.nodes", raising=False)
    nodes = importlib.import_module("colorize.comfyui.nodes")
    monkeypatch.delitem(sys.modules, "colorize.comfyui.nodes", raising=False)
    nodes.register_model_folder()
    return comfy, nodes
