"""One run's checkpointing: resume or start, save every N frames, finish or keep for later.

The pipeline drives a :class:`ResumeSession`:

1. :meth:`ResumeSession.open` looks beside the output. No checkpoint: a fresh run. A checkpoint
   and ``--resume`` (or an explicit ``--checkpoint-every``, i.e. the command that was interrupted):
   it is checked (damage, fingerprint) and the run continues at its position. A checkpoint and
   neither option: :class:`~colorize.errors.CheckpointExistsError` tells the user both choices.
2. :meth:`attach` extends the run's :class:`~colorize.engine.guide.VideoGuide`: ``start`` is
   the saved engine state (the engine continues from it instead of starting from the
   reference), and ``on_frame`` copies the engine's snapshot at the frames chosen for a
   checkpoint. That callback runs in the engine's compute thread, which may be a frame or two
   ahead of the writer, so copies wait in :attr:`_captured` until the writer has written that
   frame.
3. :meth:`frame_written` (writer thread) saves the checkpoint once the frame's output part is
   durable: parts first, state next, record last.
   Each checkpoint also keeps where a resumed run may start decoding (a
   :class:`~colorize.video.seek.SeekAnchor`: the keyframe before the position and the
   timestamps after it, from the frames this run decoded) and the ``--shots auto`` cut
   detector's state at the position, so a resumed run seeks instead of decoding the frames
   before it (:meth:`continue_footage`, :attr:`seek_anchor`).
4. :meth:`finish` marks the record complete (a kill during the final encode resumes straight to
   it), commits the output, and deletes the folder. :meth:`keep` runs on failure.

Default interval (no ``--checkpoint-every``): a checkpoint once the work since the last one is
at least ``max(AUTO_MIN_SECONDS, last checkpoint's cost / TARGET_OVERHEAD)``: measured cost
against measured frame time, so the saving costs at most 3% of the run whatever the frame size,
device and memory size. For video output each checkpoint also starts a segment, whose first
frame is a keyframe, so it also waits until the segment holds the encoder's own keyframe
interval (``min_frames_between``: 250 frames for H.264, 128 for VP9), or the next frame starts a
shot: the output then has about the keyframes an uninterrupted encode has. A crash loses at most
that much work (``--plan`` says how long it is on the device: :func:`describe_checkpoints`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from colorize.errors import CheckpointExistsError, CheckpointUnusableError
from colorize.footage.checkpoint import CheckpointFolder, CheckpointRecord, checkpoint_dir_for
from colorize.footage.fingerprint import describe_changes
from colorize.footage.parts import CheckpointedParts, PngParts, VideoSegmentParts
from colorize.video.seek import AnchorTracker, SeekAnchor
from colorize.video.source import FrameMeta, Source
from colorize.video.target import OutputTarget

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from colorize.engine.guide import FrameRecord, VideoGuide
    from colorize.engine.state import VideoState
    from colorize.footage.report import ConfidenceReport
    from colorize.footage.setup import FootageSetup

logger = logging.getLogger(__name__)

TARGET_OVERHEAD = 0.03
REPORT_COUNT = "report_records"
AUTO_MIN_SECONDS = 10.0
SEEK = "seek"
CUT_DETECTOR = "cut_detector"
# How far back the cut detector's state is kept (one small frame each, at most 256 pixels a
# side): the decoder runs at most a queue (4), a key-encode chunk (16) and the compute queue
# (2) ahead of the frame a checkpoint is taken at. A miss only makes that checkpoint's resume
# decode from the start.
DETECTOR_HISTORY = 64


@dataclass(frozen=True)
class CheckpointSettings:
    """``--checkpoint-every`` (None: automatic, 0: off) and ``--resume``."""

    every: int | None = None
    resume: bool = False

    @property
    def enabled(self) -> bool:
        return self.every != 0

    @property
    def continues_by_itself(self) -> bool:
        """The interrupted command had --checkpoint-every, so running it again continues."""
        return self.resume or (self.every is not None and self.every > 0)


class ResumeSession:
    """Checkpoint state of one run (see the module docstring)."""

    def __init__(self, folder: CheckpointFolder, parts: CheckpointedParts,
                 fingerprint: dict[str, Any], settings: CheckpointSettings) -> None:
        self.folder = folder
        self.parts = parts
        self.fingerprint = fingerprint
        self.settings = settings
        self.start_frame = 0
        self.saved_frame: int | None = None      # last checkpointed position
        self._record: CheckpointRecord | None = None
        self._start: "VideoState | None" = None     # engine state to continue from
        self._captured: dict[int, tuple[dict[str, "torch.Tensor"], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._last_save = time.monotonic()
        self._last_cost = 0.0
        self.costs: list[float] = []             # seconds per checkpoint (benchmarks read it)
        # --report: records of the frames before the checkpoint are kept in the checkpoint's
        # report log, so a resumed run's report covers the whole video, not only the frames
        # after the resume.
        self._report: "ConfidenceReport | None" = None
        self._saved_report: list[dict[str, Any]] = []
        self._report_saved = 0                   # records already in the report log
        # Where the decoding of a resumed run may start, learnt from the frames decoded.
        self._anchors = AnchorTracker()
        self.seek_anchor: SeekAnchor | None = None
        # --shots auto: the detector's state after each recent frame (frames fed, cuts so far,
        # the frame it compares the next one with), and the state loaded from a checkpoint.
        self._footage: "FootageSetup | None" = None
        self._detector_history: dict[int, tuple[int, Any]] = {}
        self._detector_state: tuple[dict[str, Any], dict[str, Any]] | None = None

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, target: OutputTarget, source: Source, reopen: Callable[[], Source],
             crf: int | None, fingerprint: dict[str, Any],
             settings: CheckpointSettings) -> "ResumeSession | None":
        """The session for this run, or None when it runs without checkpoints."""
        folder = CheckpointFolder(checkpoint_dir_for(target.path))
        if folder.path.exists() and not folder.has_record():
            # Killed before its first checkpoint: nothing there can be used.
            logger.debug("removing %s (no checkpoint inside)", folder.path)
            folder.remove()
        if folder.has_record():
            if not settings.continues_by_itself:
                raise CheckpointExistsError(_exists_message(folder))
        elif settings.resume:
            logger.warning("--resume: no checkpoint at %s; starting from the first frame",
                           folder.path)
        if not settings.enabled or target.kind == "image":
            if folder.has_record():
                raise CheckpointUnusableError(
                    f"this run cannot continue the resume checkpoint at {folder.path}; delete "
                    "that folder to start over")
            return None
        parts: CheckpointedParts
        if target.kind == "png_folder":
            parts = PngParts(folder.frames, target, source)
        else:
            parts = VideoSegmentParts(folder.frames, target, source, reopen, crf)
        session = cls(folder, parts, fingerprint, settings)
        if folder.has_record():
            session._load()
        return session

    def _load(self) -> None:
        record = self.folder.load()
        changes = describe_changes(record.fingerprint, self.fingerprint)
        if changes:
            raise CheckpointUnusableError(
                f"cannot resume from {self.folder.path}: {'; '.join(changes)}. Rerun with the "
                "original input, references and options, or delete that folder to start over")
        self.parts.resume(record.parts, record.next_frame)
        tensors = self.folder.load_state(record)
        self.folder.remove_stray_states(keep=record.state_file)
        detector_arrays = {name[len(CUT_DETECTOR) + 1:]: tensors.pop(name).numpy()
                           for name in [n for n in tensors if n.startswith(CUT_DETECTOR + ".")]}
        if CUT_DETECTOR in record.engine_meta:
            self._detector_state = (record.engine_meta[CUT_DETECTOR], detector_arrays)
        if record.engine_meta.get(SEEK):
            try:
                self.seek_anchor = SeekAnchor.from_json(record.engine_meta[SEEK])
            except (KeyError, TypeError, ValueError) as error:
                raise self.folder.damaged(f"seek position unusable ({error})") from None
        if not record.complete:
            from colorize.engine.state import VideoState

            try:
                self._start = VideoState.restore(tensors, record.engine_meta["state"])
                consistent = self._start.next_frame == record.next_frame
            except (KeyError, TypeError, ValueError) as error:
                raise self.folder.damaged(f"engine state unusable ({error})") from None
            if not consistent:
                raise self.folder.damaged("engine state and position disagree")
        self._record = record
        self._saved_report = self.folder.load_report(int(record.engine_meta.get(REPORT_COUNT, 0)))
        self._report_saved = len(self._saved_report)
        self.start_frame = record.next_frame
        self.saved_frame = record.next_frame
        logger.info("resuming from the checkpoint at frame %d (%s)", record.next_frame,
                    self.folder.path)

    # -- engine side (compute thread) ----------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._record is not None and self._record.complete

    def track_report(self, report: "ConfidenceReport") -> None:
        """Keep ``report``'s records in every checkpoint; refill it from a resumed one."""
        for item in self._saved_report:
            report.add(int(item["frame"]), item["score"], item["reference"], int(item["shot"]))
        self._saved_report = []
        self._report = report

    def continue_footage(self, footage: "FootageSetup | None") -> bool:
        """Give ``footage`` its state at the checkpoint; False when the frames before the
        checkpoint must be shown to it again (its cut detector's state was not saved)."""
        self._footage = footage
        if footage is None or footage.detector is None or not self.start_frame:
            return True
        if self._detector_state is None:
            return False
        from colorize.footage.shots import CutDetector

        meta, arrays = self._detector_state
        try:
            detector = CutDetector.restore(meta, arrays)
        except (KeyError, TypeError, ValueError) as error:
            raise self.folder.damaged(f"cut detector state unusable ({error})") from None
        if detector.frames_fed != self.start_frame:
            raise self.folder.damaged("cut detector state and position disagree")
        footage.continue_detector(detector)
        return True

    def observe(self, meta: FrameMeta) -> None:
        """Every decoded frame, in order, after the footage set-up saw it (decoding thread)."""
        self._anchors.observe(meta.index, meta.pts, meta.keyframe)
        detector = self._footage.detector if self._footage is not None else None
        if detector is not None:
            with self._lock:
                self._detector_history[meta.index + 1] = (len(detector.cuts),
                                                          detector.state_arrays())
                self._detector_history.pop(meta.index + 1 - DETECTOR_HISTORY, None)

    def _resume_state(self, next_frame: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The seek anchor and the cut detector's state for a checkpoint at ``next_frame``:
        (meta, arrays); empty where unknown (a resumed run then decodes from the start)."""
        meta: dict[str, Any] = {}
        arrays: dict[str, Any] = {}
        anchor = self._anchors.anchor_for(next_frame)
        if anchor is not None:
            meta[SEEK] = anchor.as_json()
        detector = self._footage.detector if self._footage is not None else None
        with self._lock:
            recorded = self._detector_history.get(next_frame)
        if detector is not None and recorded is not None:
            cut_count, detector_arrays = recorded
            meta[CUT_DETECTOR] = {**detector.state_meta(), "frames_fed": next_frame,
                                  "cuts": detector.cuts[:cut_count]}
            arrays = {f"{CUT_DETECTOR}.{name}": array for name, array in detector_arrays.items()}
        return meta, arrays

    def _save_report(self, next_frame: int) -> dict[str, Any]:
        """Append the records of frames before ``next_frame`` not yet in the log; the meta
        that counts them."""
        if self._report is None:
            return {}
        # The engine may be a frame or two ahead of the writer: only finished frames count.
        fresh = [record.as_json() for record in self._report.records[self._report_saved:]
                 if record.frame < next_frame]
        if fresh:
            self.folder.append_report(fresh)
            self._report_saved += len(fresh)
        return {REPORT_COUNT: self._report_saved}

    def attach(self, guide: "VideoGuide | None", colorizer: Any) -> "VideoGuide":
        """``guide`` (or a plain one) with this session's start state and frame callback."""
        from colorize.engine.guide import VideoGuide

        guide = guide if guide is not None else VideoGuide()
        inner = guide.on_frame

        def on_frame(record: "FrameRecord") -> None:
            if inner is not None:
                inner(record)
            if self._due(record.index):
                self._capture(record.index, colorizer.snapshot())

        start, self._start = self._start, None
        return replace(guide, on_frame=on_frame, start=start)

    def _capture(self, index: int, state: "VideoState") -> None:
        # A copy on the CPU: the device copy would keep GPU memory until the writer saves it.
        import torch

        tensors = {name: tensor.detach().to("cpu", copy=True).contiguous()
                   for name, tensor in state.state_tensors().items()}
        meta, arrays = self._resume_state(index + 1)
        tensors.update({name: torch.from_numpy(array.copy()) for name, array in arrays.items()})
        with self._lock:
            self._captured[index] = (tensors, {"state": state.state_meta(), **meta})

    def _due(self, index: int) -> bool:
        every = self.settings.every
        if every is not None:
            return (index + 1 - self.start_frame) % every == 0
        wait = max(AUTO_MIN_SECONDS, self._last_cost / TARGET_OVERHEAD)
        if time.monotonic() - self._last_save < wait:
            return False
        # A video checkpoint starts a segment, and so a keyframe: not before the encoder's own
        # interval has passed, unless the next frame starts a shot (a keyframe there is free).
        next_frame = index + 1
        since = next_frame - (self.saved_frame if self.saved_frame is not None else self.start_frame)
        footage = self._footage
        return since >= self.parts.min_frames_between or (
            footage is not None and footage.is_cut(next_frame))

    # -- writer side ---------------------------------------------------------------------------

    def frame_written(self, index: int) -> None:
        """Save the checkpoint captured at ``index``, if any, now that the frame is written."""
        with self._lock:
            captured = self._captured.pop(index, None)
            for stale in [i for i in self._captured if i < index]:
                del self._captured[stale]
        if captured is None:
            return
        tensors, engine_meta = captured
        self._save(index + 1, tensors, engine_meta, complete=False)

    def _save(self, next_frame: int, tensors, engine_meta: dict[str, Any], complete: bool) -> None:
        started = time.perf_counter()
        parts = self.parts.make_durable()
        engine_meta = {**engine_meta, **self._save_report(next_frame)}
        record = CheckpointRecord(next_frame=next_frame, fingerprint=self.fingerprint,
                                  engine_meta=engine_meta, state_file=None, state_sha256=None,
                                  parts=parts, complete=complete)
        self.folder.save(record, tensors)
        self._record = record
        self.saved_frame = next_frame
        self._last_cost = time.perf_counter() - started
        self.costs.append(self._last_cost)
        self._last_save = time.monotonic()
        logger.debug("checkpoint at frame %d in %.3f s", next_frame, self._last_cost)

    def finish(self, frames: int) -> None:
        """All frames are written: record that, build the output, remove the folder."""
        if not self.complete:
            self._save(frames, None, {}, complete=True)
        self.parts.commit()
        self.folder.remove()

    def keep(self) -> None:
        """After a failure: keep a usable checkpoint, drop a folder without one."""
        self.parts.abort()
        if not self.folder.has_record():
            self.folder.remove()
        elif self.saved_frame:
            logger.warning("progress up to frame %d is saved in %s: run the same command with "
                           "--resume to continue", self.saved_frame, self.folder.path)


def describe_checkpoints(settings: CheckpointSettings, min_frames_between: int,
                         seconds_per_frame: float) -> str:
    """The ``--plan`` line: how often checkpoints fall and the work a crash can lose."""
    if not settings.enabled:
        return "checkpoints:      off (--checkpoint-every 0): a crash loses the whole run"
    if settings.every is not None:
        lost = settings.every * seconds_per_frame
        return (f"checkpoints:      every {settings.every} frames: a crash loses at most "
                f"{_duration(lost)} of work here")
    lost = max(AUTO_MIN_SECONDS, min_frames_between * seconds_per_frame)
    frames = f" and {min_frames_between} frames (the encoder's keyframe interval; sooner at " \
        "a cut)" if min_frames_between > 1 else ""
    return (f"checkpoints:      after at least {AUTO_MIN_SECONDS:.0f} s of work{frames}: a "
            f"crash loses at most about {_duration(lost)} of work here")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _exists_message(folder: CheckpointFolder) -> str:
    try:
        where = f" (frame {folder.load().next_frame})"
    except CheckpointUnusableError:
        where = ""
    return (f"an interrupted run left a checkpoint{where} at {folder.path}: add --resume to "
            "continue it, or delete that folder to start over")
