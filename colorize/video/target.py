"""Output side, part 1: decide what ``-o`` means and whether writing there is allowed.

The rules (also in ``colorize --help``):

* ``.mp4``/``.m4v``/``.mkv``/``.mov``/``.webm`` -> a video file in that container;
* ``.png``/``.jpg``/``.jpeg``/``.tif``/``.tiff``/``.bmp`` -> one image (single-image input only);
* no extension, a trailing slash, or an existing folder -> a folder of PNG frames;
* any other extension is refused, so ``out.avi`` never silently becomes a folder.

Without ``-o`` the output goes beside the input as ``<stem>_colorized.<ext>`` (a folder
``<name>_colorized`` for folder input).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from colorize.errors import OutputExistsError, OutputWriteError, UnsupportedOutputError
from colorize.video import images
from colorize.video.source import SourceInfo

OutputKind = Literal["video", "png_folder", "image"]

#: Output extension -> FFmpeg muxer name.
VIDEO_CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mkv": "matroska",
    ".mov": "mov",
    ".webm": "webm",
}

#: Output extension -> Pillow format name for a single-image output.
IMAGE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}

DEFAULT_SUFFIX = "_colorized"


@dataclass(frozen=True)
class OutputTarget:
    """Where the result goes and in which form."""

    path: Path
    kind: OutputKind
    container_format: str | None = None
    image_format: str | None = None


def resolve_output(raw: str | None, source: SourceInfo, overwrite: bool) -> OutputTarget:
    """Turn the ``-o`` value (or its absence) into a checked :class:`OutputTarget`."""
    target = _default_target(source) if raw is None else _parse_target(raw)
    _check_shape_fits(target, source)
    _check_not_input(target, source)
    _check_existing(target, overwrite)
    _check_parent_writable(target)
    return target


def _parse_target(raw: str) -> OutputTarget:
    path = Path(raw).expanduser()
    suffix = path.suffix.lower()
    if raw.endswith(("/", os.sep)) or path.is_dir() or not suffix:
        return OutputTarget(path, "png_folder")
    if suffix in VIDEO_CONTAINERS:
        return OutputTarget(path, "video", container_format=VIDEO_CONTAINERS[suffix])
    if suffix in IMAGE_FORMATS:
        return OutputTarget(path, "image", image_format=IMAGE_FORMATS[suffix])
    raise UnsupportedOutputError(
        f"unsupported output extension '{path.suffix}': use one of "
        f"{', '.join(VIDEO_CONTAINERS)} for video, a folder for PNG frames, "
        f"or {', '.join(IMAGE_FORMATS)} for a single image"
    )


def _default_target(source: SourceInfo) -> OutputTarget:
    path = source.path
    if source.kind == "image_folder":
        folder = path.resolve()
        return OutputTarget(folder.with_name(folder.name + DEFAULT_SUFFIX), "png_folder")
    suffix = path.suffix.lower()
    if source.kind == "image":
        suffix = suffix if suffix in IMAGE_FORMATS else ".png"
        return OutputTarget(
            path.with_name(path.stem + DEFAULT_SUFFIX + suffix),
            "image",
            image_format=IMAGE_FORMATS[suffix],
        )
    suffix = suffix if suffix in VIDEO_CONTAINERS else ".mp4"
    return OutputTarget(
        path.with_name(path.stem + DEFAULT_SUFFIX + suffix),
        "video",
        container_format=VIDEO_CONTAINERS[suffix],
    )


def _check_shape_fits(target: OutputTarget, source: SourceInfo) -> None:
    if target.kind == "image" and source.kind != "image":
        raise UnsupportedOutputError(
            f"{target.path.name} can hold one frame but the input is a clip; give a folder "
            "(a path without extension or ending in '/') or a video file name"
        )


def _check_not_input(target: OutputTarget, source: SourceInfo) -> None:
    if target.path.resolve() == source.path.resolve():
        raise UnsupportedOutputError(
            f"the output path is the input itself: {target.path}; choose another -o"
        )


def _check_existing(target: OutputTarget, overwrite: bool) -> None:
    path = target.path
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise OutputExistsError(f"output already exists: {path}; pass --overwrite to replace it")
    if target.kind == "png_folder":
        if not path.is_dir():
            raise OutputExistsError(f"output {path} exists and is a file, not a folder")
        others = [
            entry.name
            for entry in path.iterdir()
            if entry.is_dir() or entry.suffix.lower() not in images.IMAGE_EXTENSIONS
        ]
        if others:
            # --overwrite replaces the whole folder: never throw away files we did not write.
            raise OutputExistsError(
                f"refusing to replace folder {path}: it holds non-image entries "
                f"(e.g. {others[0]}); choose an empty or new folder"
            )
    elif path.is_dir():
        raise OutputExistsError(f"output {path} exists and is a folder, not a file")


def _check_parent_writable(target: OutputTarget) -> None:
    parent = target.path.absolute().parent
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputWriteError(f"cannot write into {existing}: permission denied")
