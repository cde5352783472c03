"""Several references for one video: ``--ref [FRAME=]PATH`` (repeatable) and ``--ref-dir DIR``.

A :class:`ReferenceSchedule` maps frame indices (0-based, decode order) to reference images. The
main reference applies from frame 0: a plain ``--ref PATH`` or ``--ref 0=PATH`` (or
``ref_000000.png`` in a folder). Every other reference is a keyframe: encoded once when its frame
arrives and kept in permanent memory until the next cut. At a cut memory starts again from the
latest reference at or before the shot's first frame, else the main one
(:meth:`ReferenceSchedule.for_shot`).

``--ref-dir`` reads CMNET2/HAVC's naming: ``ref_000120.png`` is the reference of frame 120 (any
number of digits, any image extension Pillow reads). Hidden files are skipped; other names are
reported and skipped. No torch here.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from colorize.errors import ReferenceUnreadableError

logger = logging.getLogger(__name__)

_FRAME_SPEC = re.compile(r"^(\d+)=(.+)$", re.S)
_DIR_NAME = re.compile(r"^ref_(\d+)\.[A-Za-z0-9]+$")


class ReferenceScheduleError(ReferenceUnreadableError):
    """References given inconsistently: two for one frame, none for frame 0, past the end."""


@dataclass(frozen=True)
class ReferenceSpec:
    """One ``--ref`` value: ``frame`` None for a plain path (the main reference)."""

    path: Path
    frame: int | None = None
    origin: str = "--ref"

    @property
    def label(self) -> str:
        return f"{self.origin} {self.frame}={self.path}" if self.frame is not None else \
            f"{self.origin} {self.path}"


def parse_ref_option(text: str) -> ReferenceSpec:
    """``"120=key.png"`` -> frame 120; ``"ref.png"`` -> the main reference.

    A path that itself starts with digits and ``=`` can be written ``./12=x.png``.
    """
    match = _FRAME_SPEC.match(text)
    if match is None:
        return ReferenceSpec(Path(text))
    return ReferenceSpec(Path(match.group(2)), int(match.group(1)))


def read_reference_dir(folder: Path, origin: str = "--ref-dir") -> list[ReferenceSpec]:
    """The ``ref_<frame>.<ext>`` files of ``folder``, sorted by frame; ``origin`` names where
    the folder was given in messages (the option, or the node)."""
    if not folder.exists():
        raise ReferenceUnreadableError(f"{origin} folder not found: {folder}")
    if not folder.is_dir():
        raise ReferenceUnreadableError(f"{origin} must be a folder: {folder}")
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise ReferenceUnreadableError(f"cannot list {origin} {folder}: {error.strerror}") from None
    specs: list[ReferenceSpec] = []
    skipped: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        match = _DIR_NAME.match(entry.name)
        if match is None or entry.is_dir():
            skipped.append(entry.name)
            continue
        specs.append(ReferenceSpec(entry, int(match.group(1)), origin=origin))
    if skipped:
        logger.info("%s %s: skipped %d file(s) not named ref_<frame>.<ext> (%s)", origin, folder,
                    len(skipped), ", ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else ""))
    if not specs:
        raise ReferenceUnreadableError(
            f"{origin} {folder} holds no ref_<frame>.<ext> images (e.g. ref_000000.png)")
    return sorted(specs, key=lambda spec: spec.frame)


@dataclass(frozen=True)
class ReferenceSchedule:
    """Frame -> reference image path; frame 0 is the main reference."""

    main: Path
    keyframes: dict[int, Path] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: Iterable[ReferenceSpec]) -> "ReferenceSchedule":
        """Check and combine ``--ref`` and ``--ref-dir`` values (a plain path = frame 0)."""
        by_frame: dict[int, ReferenceSpec] = {}
        for spec in specs:
            frame = 0 if spec.frame is None else spec.frame
            if frame in by_frame:
                raise ReferenceScheduleError(
                    f"two references for frame {frame}: {by_frame[frame].label} and "
                    f"{spec.label}; give one per frame")
            by_frame[frame] = spec
        if not by_frame:
            raise ReferenceScheduleError("no reference given: use --ref PATH or --ref-dir DIR")
        if 0 not in by_frame:
            first = min(by_frame)
            raise ReferenceScheduleError(
                f"no reference for frame 0 (the first is for frame {first}): add a plain "
                f"--ref PATH or --ref 0=PATH for the frames before it")
        return cls(by_frame[0].path,
                   {frame: spec.path for frame, spec in sorted(by_frame.items()) if frame})

    @property
    def frames(self) -> list[int]:
        """Every reference frame, 0 first."""
        return [0, *sorted(self.keyframes)]

    def path(self, frame: int) -> Path:
        return self.main if frame == 0 else self.keyframes[frame]

    def for_shot(self, start: int) -> int:
        """The reference frame a shot starting at ``start`` uses: the latest keyframe at or
        before it, else 0 (the main reference)."""
        return max((frame for frame in self.keyframes if frame <= start), default=0)

    def in_use(self, frame: int, shot_start: int) -> int:
        """The reference most recently added at ``frame`` in a shot starting at ``shot_start``."""
        later = [f for f in self.keyframes if shot_start < f <= frame]
        return max(later) if later else self.for_shot(shot_start)

    def check_frame_count(self, frame_count: int | None) -> None:
        """A reference for a frame the input does not have is a mistake, not a no-op."""
        if frame_count is None or not self.keyframes:
            return
        last = max(self.keyframes)
        if last >= frame_count:
            raise ReferenceScheduleError(
                f"reference for frame {last} ({self.keyframes[last]}) is beyond the end of the "
                f"input ({frame_count} frames, 0-{frame_count - 1}); frames are 0-based in "
                "decode order")
