"""The keyframes folder: ``gray/ref_NNNNNN.png`` stills and ``keyframes.json``.

Layout of ``DIR`` (``colorize keyframes INPUT -o DIR``)::

    DIR/keyframes.json        every keyframe (schema below)
    DIR/gray/ref_000120.png   one grey still per group, named for the group's first keyframe
    DIR/ref_000120.png        colour references, one per keyframe (by a generator or by hand):
                              exactly what ``colorize --ref-dir DIR`` reads
    DIR/review.html, review.png

The grey stills of a run are written into a hidden folder beside ``gray/`` as they are chosen,
and swapped in when the whole pick is done; ``keyframes.json`` is written to a temporary file
and renamed. An interrupted run leaves the previous pick as it was. Colour files are never
touched here.

``keyframes.json`` (``version`` 1; paths relative to ``DIR``)::

    {"format": "colorize-keyframes", "version": 1,
     "input": str, "frame_count": int, "frame_size": [W, H], "fps": float | null,
     "shots": "auto" | str | null,          # --shots as given
     "cuts": [int, ...],                    # first frames of shots 1, 2, ...
     "report": str | null,                  # --report as given
     "settings": {"group_threshold": float, "sample_every": int, "search_frames": int, ...},
     "groups": [{"group": int, "still": "gray/ref_000000.png", "source_frame": int,
                 "score": float, "measures": {...}, "problems": [str],
                 "serves": [int, ...], "colour": ["ref_000000.png", ...]}],
     "keyframes": [{"serves": int, "source_frame": int, "shot": int,
                    "shot_start": int, "shot_end": int,   # end exclusive
                    "group": int, "reason": "shot start" | "low score" | "first frame",
                    "score": float, "problems": [str],
                    "gray": "gray/ref_000000.png", "colour": "ref_000120.png"}],
     "skipped_suggestions": [int, ...]}     # report suggestions that were keyframes already
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError, OutputWriteError
from colorize.footage.report import reference_file_name
from colorize.references.picker import Keyframe, KeyframePick, Still

__all__ = ["FORMAT", "GRAY_FOLDER", "KEYFRAMES_FILE", "StillWriter", "atomic_write",
           "keyframes_json", "read_keyframes", "write_json"]

FORMAT = "colorize-keyframes"
VERSION = 1
KEYFRAMES_FILE = "keyframes.json"
GRAY_FOLDER = "gray"


def gray_name(serves: int) -> str:
    return f"{GRAY_FOLDER}/{reference_file_name(serves)}"


class StillWriter:
    """Writes each group's grey still as it is chosen into a hidden folder of ``folder``;
    :meth:`commit` swaps it in for ``gray/``, :meth:`abort` removes it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stills: dict[int, Still] = {}  # group -> still, without the picture once written
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=".gray-", dir=folder))
            os.chmod(self._staging, 0o777 & ~_umask())
        except OSError as exc:
            raise OutputWriteError(
                f"cannot write to {folder}: {exc.strerror or exc}; choose another -o folder"
            ) from None

    def __call__(self, still: Still) -> None:
        from PIL import Image

        path = self._staging / reference_file_name(still.serves)
        try:
            Image.fromarray(still.gray(), mode="L").save(path, format="PNG")
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from None
        # Only the numbers are kept: the picture is on disk now.
        self.stills[still.group] = Still(still.group, still.serves, still.frame, still.score,
                                         still.measures, rgb=still.rgb[:0, :0])

    def commit(self) -> Path:
        target = self.folder / GRAY_FOLDER
        old = None
        try:
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=".gray-old-", dir=self.folder))
                os.replace(target, old / GRAY_FOLDER)
            os.replace(self._staging, target)
        except OSError as exc:
            raise OutputWriteError(f"cannot replace {target}: {exc.strerror or exc}") from None
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def abort(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


def keyframes_json(pick: KeyframePick, stills: dict[int, Still], *, input_label: str,
                   frame_size: tuple[int, int], fps: float | None, shots: str | None,
                   report: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The ``keyframes.json`` object of a pick (module docstring)."""
    groups: dict[int, list[Keyframe]] = {}
    for keyframe in pick.keyframes:
        groups.setdefault(keyframe.group, []).append(keyframe)
    return {
        "format": FORMAT,
        "version": VERSION,
        "input": input_label,
        "frame_count": pick.frame_count,
        "frame_size": list(frame_size),
        "fps": fps,
        "shots": shots,
        "cuts": list(pick.cuts),
        "report": report,
        "settings": settings,
        "groups": [
            {
                "group": group,
                "still": gray_name(stills[group].serves),
                "source_frame": stills[group].frame,
                "score": round(stills[group].score, 4),
                "measures": stills[group].measures.as_json(),
                "problems": list(members[0].problems),
                "serves": [k.serves for k in members],
                "colour": [reference_file_name(k.serves) for k in members],
            }
            for group, members in sorted(groups.items())
        ],
        "keyframes": [
            {**asdict(k), "problems": list(k.problems), "gray": gray_name(k.still_serves),
             "colour": reference_file_name(k.serves)}
            for k in pick.keyframes
        ],
        "skipped_suggestions": list(pick.skipped_suggestions),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (:func:`atomic_write`)."""
    atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path`` and rename it into place, so a
    reader never sees half a file. Raises OutputWriteError."""
    from colorize.footage.checkpoint import write_atomically

    try:
        write_atomically(path, payload, sync_folder=False)
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_keyframes(folder: Path) -> dict[str, Any]:
    """``folder/keyframes.json``, checked to be one; raises ColorizeError."""
    path = folder / KEYFRAMES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ColorizeError(f"{path} not found: run 'colorize keyframes INPUT -o {folder}' "
                            "first") from None
    except (OSError, ValueError) as exc:
        raise ColorizeError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ColorizeError(f"{path} is not a version {VERSION} {FORMAT} file")
    return data
