"""Custom node packs comfy-run knows by name: what to tell a user whose server lacks one.

A prompt that uses a pack's classes on a server without the pack would fail validation with a
raw "class not found"; the preflight instead names the pack once, says where it is missing and
gives the command that installs it. Model inputs of a pack's loaders name their model folder, so a
missing checkpoint is reported with its folder before anything is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodePack:
    """A node pack: its classes, how to install it, and which inputs name model files."""

    name: str
    classes: frozenset[str]
    install: str
    model_inputs: dict[tuple[str, str], str] = field(default_factory=dict)

    def missing_message(self, server: str | None, object_info: dict[str, Any] | None = None,
                        api: dict[str, Any] | None = None) -> str:
        """One line for a server that lacks the pack, or (when some of its classes are there) has
        a version older than the workflow needs."""
        where = server or "the server"
        if object_info is not None and any(name in object_info for name in self.classes):
            used = sorted({str(n.get("class_type")) for n in (api or {}).values()} & self.classes)
            absent = [name for name in used if name not in object_info]
            return (f"the {self.name} nodes on {where} are older than this workflow needs (no "
                    f"{', '.join(absent) or 'such class'}); upgrade the package in the Python ComfyUI "
                    f"runs with, run {self.install} again and restart ComfyUI")
        return f"the {self.name} nodes are not installed on {where}; install them with: {self.install}"


COLORIZE = NodePack(
    name="colorize",
    classes=frozenset({"ColorizeLoadColorMNet", "ColorizeFrames", "ColorizeVideo", "ColorizeKeyframes",
                       "ColorizeLoadKeyframes", "ColorizePickKeyframes", "ColorizeKeepLuminance"}),
    install="colorize comfyui install COMFYUI_DIR",
    model_inputs={("ColorizeLoadColorMNet", "checkpoint"): "colormnet"},
)

KNOWN_PACKS: tuple[NodePack, ...] = (COLORIZE,)


def pack_of(class_type: str) -> NodePack | None:
    return next((pack for pack in KNOWN_PACKS if class_type in pack.classes), None)


def missing_packs(api: dict[str, Any], object_info: dict[str, Any]) -> list[NodePack]:
    """Known packs the workflow uses that the server's ``/object_info`` lacks, in first-use order."""
    found: list[NodePack] = []
    for node in api.values():
        class_type = node.get("class_type")
        pack = pack_of(str(class_type))
        if pack is not None and class_type not in object_info and pack not in found:
            found.append(pack)
    return found


def model_folder(class_type: str, input_name: str) -> str | None:
    """The model folder a known pack's input reads from (e.g. ``colormnet``), else None."""
    pack = pack_of(class_type)
    return pack.model_inputs.get((class_type, input_name)) if pack is not None else None
