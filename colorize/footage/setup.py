"""One run's long-footage set-up: references by frame, shots and the confidence report, wired
to the engine's :class:`~colorize.engine.guide.VideoGuide`.

The CLI builds a :class:`FootageSetup` before the model is loaded, so every mistake in the
options (two references for one frame, a reference past the end, a bad shots file, an
unreadable image) is reported before any work and before anything exists at the output path.
The pipeline then shows it every decoded frame (:meth:`FootageSetup.observe`, which feeds the
cut detector of ``--shots auto`` on the frames already decoded) and hands
:meth:`FootageSetup.guide` to the colorizer. No torch here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from colorize.footage.references import ReferenceSchedule, ReferenceScheduleError
from colorize.reference import load_reference

if TYPE_CHECKING:  # pragma: no cover
    from colorize.engine.guide import FrameRecord, VideoGuide
    from colorize.footage.report import ConfidenceReport
    from colorize.footage.shots import CutDetector, Shot

logger = logging.getLogger(__name__)

#: Reads one reference: its path (or label) and the (W, H) frame size -> RGB at that size. The
#: CLI reads files; the ComfyUI nodes look up IMAGE inputs by their label.
ReferenceReader = Callable[[Path, tuple[int, int]], np.ndarray]

SCORE_DEFINITION = (
    "mean over the frame's stride-16 positions of exp(s_max / 64), s_max <= 0 being the "
    "position's best memory similarity (minus the selection-weighted squared key distance, "
    "times shrinkage, over 8); 1 = an exact match in memory for every position"
)


class _KeyframeImages(Mapping):
    """Frame -> RGB at the frame size, each read when the engine reaches it (not all at once)."""

    def __init__(self, schedule: ReferenceSchedule, size: tuple[int, int],
                 read: ReferenceReader) -> None:
        self._schedule = schedule
        self._size = size
        self._read = read

    def __getitem__(self, frame: int) -> np.ndarray:
        return self._read(self._schedule.keyframes[frame], self._size)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._schedule.keyframes))

    def __len__(self) -> int:
        return len(self._schedule.keyframes)


@dataclass
class FootageSetup:
    """References by frame, optional shots (a cut list or a detector) and an optional report."""

    schedule: ReferenceSchedule
    frame_size: tuple[int, int]                  # (W, H), upright
    cuts: list[int] | None = None                # from --shots FILE
    detector: "CutDetector | None" = None        # --shots auto
    report: "ConfidenceReport | None" = None
    report_path: Path | None = None
    main_reference: np.ndarray | None = None
    read: ReferenceReader = load_reference
    _cut_set: set[int] = field(default_factory=set, repr=False)
    _last_frame_seen: int = field(default=-1, repr=False)

    @classmethod
    def prepare(cls, schedule: ReferenceSchedule, *, frame_size: tuple[int, int],
                frame_count: int | None, frame_count_exact: bool, shots: str | None = None,
                fps: float | Fraction | None = None, report_path: Path | None = None,
                input_label: str | None = None, cuts: list[int] | None = None,
                read: ReferenceReader = load_reference, report: bool = False) -> "FootageSetup":
        """Check everything that can be checked before the run; raises ColorizeError.

        ``shots`` is ``"auto"`` or a shots file; ``cuts`` gives the cut frames directly instead
        (checked as a file's are). ``report``: keep a report in memory even without a path.
        """
        exact = frame_count if frame_count_exact else None
        schedule.check_frame_count(exact)
        main = read(schedule.main, frame_size)
        for frame in schedule.keyframes:
            # Decoded once here so that an unreadable file stops the run before any work; the
            # pixels are read again at their frame instead of being held for the whole video.
            read(schedule.keyframes[frame], frame_size)
        detector = None
        if cuts is not None and shots is not None:
            raise ValueError("give shots (auto or a file) or cuts, not both")
        if cuts is not None:
            from colorize.footage.shots import check_cuts

            cuts = check_cuts(cuts, exact)
        elif shots == "auto":
            from colorize.footage.shots import CutDetector

            detector = CutDetector(fps=fps or 25)
        elif shots is not None:
            from colorize.footage.shots import read_shots_file

            cuts = read_shots_file(Path(shots), exact, fps=fps)
        confidence = None
        if report_path is not None or report:
            from colorize.footage.report import ConfidenceReport

            confidence = ConfidenceReport(input=input_label, fps=float(fps) if fps else None,
                                          score_definition=SCORE_DEFINITION)
        setup = cls(schedule, frame_size, cuts, detector, confidence, report_path, main, read)
        setup._cut_set = set(cuts or ())
        return setup

    @property
    def is_plain(self) -> bool:
        """One reference, no shots, no report: the engine runs exactly as without any of this."""
        return not self.schedule.keyframes and self.cuts is None and self.detector is None \
            and self.report is None

    # -- during the run ------------------------------------------------------------------------

    def observe(self, index: int, upright: np.ndarray) -> None:
        """Every decoded frame, in order (also those a resumed run skips)."""
        self._last_frame_seen = index
        if self.detector is not None and self.detector.feed(upright):
            self._cut_set.add(index)

    def continue_detector(self, detector: "CutDetector") -> None:
        """A resumed run: the cut detector as it was at the checkpoint (its cuts so far kept),
        instead of feeding it the frames before the checkpoint again."""
        self.detector = detector
        self._cut_set.update(detector.cuts)

    def is_cut(self, frame: int) -> bool:
        return frame in self._cut_set

    def guide(self) -> "VideoGuide":
        from colorize.engine.guide import VideoGuide

        shots = self.cuts is not None or self.detector is not None
        return VideoGuide(keyframes=_KeyframeImages(self.schedule, self.frame_size, self.read),
                          is_cut=self.is_cut if shots else None,
                          on_frame=self._record if self.report is not None else None)

    def _record(self, record: "FrameRecord") -> None:
        path = self.schedule.path(record.reference)
        self.report.add(record.index, record.score, reference=str(path), shot=record.shot)

    def finish(self, frames: int) -> None:
        """After the last frame: references the video never reached are an error."""
        missed = [frame for frame in self.schedule.keyframes if frame >= frames]
        if missed:
            raise ReferenceScheduleError(
                f"reference for frame {missed[-1]} ({self.schedule.keyframes[missed[-1]]}) is "
                f"beyond the end of the input ({frames} frames, 0-{frames - 1}); frames are "
                "0-based in decode order")

    def write_report(self) -> list[Path]:
        if self.report is None or self.report_path is None:
            return []
        return self.report.write(self.report_path)

    # -- --plan --------------------------------------------------------------------------------

    def describe(self, frame_count: int | None) -> list[str]:
        """Shots and the reference each one starts from, for ``--plan`` (nothing for a plain
        run with one reference and no shots)."""
        if not self.schedule.keyframes and self.cuts is None and self.detector is None:
            return []
        lines = [f"references:       {len(self.schedule.frames)} (main {self.schedule.main})"]
        for frame in sorted(self.schedule.keyframes):
            lines.append(f"  frame {frame:>7}: {self.schedule.keyframes[frame]}")
        if self.detector is not None:
            lines.append("shots:            found while running (--shots auto); each starts "
                         "from the latest reference at or before its first frame")
            return lines
        if frame_count is None:
            lines.append(f"shots:            cuts at {', '.join(map(str, self.cuts or [])) or 'none'}"
                         " (frame count unknown)")
            return lines
        for shot in self.shots(frame_count):
            start_ref = self.schedule.for_shot(shot.start)
            inside = [f for f in sorted(self.schedule.keyframes) if shot.start < f < shot.end]
            extra = f", then keyframes {', '.join(map(str, inside))}" if inside else ""
            lines.append(f"shot {shot.index:>4}: frames {shot.start}-{shot.end - 1}, reference "
                         f"{self.schedule.path(start_ref)} (frame {start_ref}){extra}")
        return lines

    def shots(self, frame_count: int) -> list["Shot"]:
        from colorize.footage.shots import shots_from_cuts

        return shots_from_cuts(self.cuts or [], frame_count)
