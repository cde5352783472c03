"""The work one worker does, the same under both executors.

A task is one of:

* ``video``:  colorize a whole video into its output (the default);
* ``cuts``:   find a video's shot boundaries (``--shots auto|FILE``) and write its frame
              index (:mod:`colorize.video.seek`) for the shot tasks;
* ``shot``:   colorize frames ``[start, end)`` of a video from the reference that applies to
              that shot, as if it were a video of its own (the model's memory starts empty;
              keyframe references inside the shot join at their frames, as in a single run),
              decoding from the keyframe before ``start`` (found in the index), into a part
              file: for a video output the shot already encoded in the output's
              codec and settings (see :mod:`colorize.video.join`), so encoding is spread over
              the workers too; for PNG frames, lossless frames (FFV1, RGB);
* ``stitch``: put the parts together in order with the input's timestamps, rotation and audio:
              for video by copying the parts' packets (no second encode, so the one serial
              step of a split film takes seconds), for frames through the normal writer.

Each worker process builds its colorizer once (:func:`context_for` caches it per process) and
only for the tasks that need it. Every user-caused failure is caught and returned as a failed
:class:`TaskResult` with its one-line reason, so executors retry only when a worker dies.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

import numpy as np

from colorize.batch.plan import VideoJob
from colorize.errors import ColorizeError, CorruptInputError
from colorize.progress import ProgressReporter

if TYPE_CHECKING:  # pragma: no cover
    from colorize.engine import MemorySettings

logger = logging.getLogger(__name__)

TaskKind = Literal["video", "cuts", "shot", "stitch"]
DEFAULT_FACTORY = "colorize.engine:build_colorizer"


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker needs to build its colorizer; paths must be valid on every worker."""

    weights: str
    device: str = "auto"
    precision: str = "auto"
    memory: "MemorySettings | None" = None
    chunk_size: int | None = None
    # "module:function" taking an EngineConfig: another engine can be plugged in (tests).
    colorizer_factory: str = DEFAULT_FACTORY


@dataclass(frozen=True)
class Task:
    task_id: str
    kind: TaskKind
    job: VideoJob
    shot_index: int = 0
    start: int = 0
    end: int = 0
    part: str = ""                      # shot: where its frames go; stitch: unused
    parts: tuple[str, ...] = ()         # stitch: the parts in order
    frame_index: str = ""               # cuts: where to write the index; shot: where to read it


@dataclass
class TaskResult:
    task_id: str
    ok: bool
    error: str | None = None
    exit_code: int | None = None
    frames: int = 0
    seconds: float = 0.0
    device: str | None = None
    worker: str = ""
    model_loaded: bool = False
    sha256: str | None = None
    cuts: list[int] = field(default_factory=list)
    frame_count: int | None = None


# -- per-process state ---------------------------------------------------------------------------

class WorkerContext:
    """One per worker process: the colorizer (built on first use) and a frame callback."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._colorizer: Any = None
        self.model_loads = 0
        self.report_frames: Callable[[str, int], None] = lambda task_id, frames: None

    def colorizer(self, job: VideoJob) -> Any:
        """The loaded colorizer, configured for ``job``'s options (the model is reused)."""
        if self._colorizer is None:
            self._colorizer = _build(self.settings)
            self.model_loads += 1
        base = self._colorizer
        config = getattr(base, "config", None)
        if config is not None:
            base.config = replace(
                self._base_config,
                max_side=job.option("max_side", self._base_config.max_side),
                reference_is_first_frame=bool(job.option("ref_is_first_frame", False)),
            )
        return base

    @property
    def _base_config(self):
        if not hasattr(self, "_config"):
            self._config = _engine_config(self.settings)
        return self._config

    def device_label(self) -> str:
        colorizer = self._colorizer
        if colorizer is None or not hasattr(colorizer, "device"):
            return f"{socket.gethostname()}"
        return f"{socket.gethostname()} {colorizer.device} {getattr(colorizer, 'precision', '')}".strip()


_CONTEXTS: dict[WorkerSettings, WorkerContext] = {}


def context_for(settings: WorkerSettings) -> WorkerContext:
    """This process's context for ``settings``: a worker that runs many tasks (a local worker, a
    reused Ray worker process) loads the checkpoint once."""
    context = _CONTEXTS.get(settings)
    if context is None:
        context = _CONTEXTS[settings] = WorkerContext(settings)
    return context


def _engine_config(settings: WorkerSettings):
    from colorize.engine import EngineConfig, MemorySettings

    return EngineConfig(
        weights=Path(settings.weights), device=settings.device,  # type: ignore[arg-type]
        precision=settings.precision,  # type: ignore[arg-type]
        memory=settings.memory or MemorySettings(), chunk_size=settings.chunk_size,
    )


def _build(settings: WorkerSettings) -> Any:
    module_name, _, attribute = settings.colorizer_factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory(_engine_config(settings))


# -- running a task ------------------------------------------------------------------------------

def execute_task(context: WorkerContext, task: Task) -> TaskResult:
    """Run ``task``; user errors come back as a failed result, never as an exception."""
    started = time.perf_counter()
    loads = context.model_loads
    result = TaskResult(task.task_id, ok=True, worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        if task.job.problem:
            raise ColorizeError(task.job.problem)
        runner = {"video": _run_video, "cuts": _run_cuts, "shot": _run_shot,
                  "stitch": _run_stitch}[task.kind]
        runner(context, task, result)
    except ColorizeError as error:
        result.ok, result.error, result.exit_code = False, str(error), error.exit_code
    except Exception as error:  # noqa: BLE001 - a bug in one video must not stop the batch
        logger.debug("task %s failed", task.task_id, exc_info=True)
        result.ok, result.exit_code = False, 1
        result.error = f"internal error ({type(error).__name__}): {error}"
    result.seconds = time.perf_counter() - started
    result.model_loaded = context.model_loads > loads
    result.device = context.device_label()
    return result


class _Counter(ProgressReporter):
    """Silent per-task progress that forwards frame counts to the executor."""

    def __init__(self, context: WorkerContext, task_id: str) -> None:
        super().__init__(total=None, enabled=False)
        self._context, self._task_id = context, task_id

    def advance(self, frames: int = 1) -> None:
        super().advance(frames)
        self._context.report_frames(self._task_id, frames)


def _open(job: VideoJob):
    from colorize.video.source import open_source

    fps = Fraction(float(job.option("fps", 25.0))).limit_denominator(1001)
    return open_source(job.input, image_fps=fps)


def _remove_stale_partials(output: Path) -> None:
    """Temporary files a killed worker left beside this output (each output has one task)."""
    if output.parent.is_dir():
        for stale in output.parent.glob(f".{output.name}.*.partial*"):
            stale.unlink(missing_ok=True)


def _run_video(context: WorkerContext, task: Task, result: TaskResult) -> None:
    from colorize.batch.results import sha256_of
    from colorize.footage.setup import FootageSetup
    from colorize.pipeline import run_colorization
    from colorize.video.sink import open_sink
    from colorize.video.target import resolve_output

    job = task.job
    _remove_stale_partials(job.output)
    with _open(job) as source:
        info = source.info
        target = resolve_output(str(job.output), info, overwrite=True)
        # Keyframe references take effect at their frames, as with `colorize --ref FRAME=PATH`
        # (encoded once, kept permanently); with only a main reference this is the plain run.
        footage = FootageSetup.prepare(
            _schedule_of(job), frame_size=info.upright_size, frame_count=info.frame_count,
            frame_count_exact=not info.frame_count_is_estimate)
        colorizer = context.colorizer(job)
        sink = open_sink(target, source, crf=job.option("crf"))
        try:
            result.frames = run_colorization(source, footage.main_reference, colorizer, sink,
                                             _Counter(context, task.task_id), footage=footage)
            sink.commit()
        except BaseException:
            sink.abort()
            raise
    result.sha256 = sha256_of(job.output)


def _schedule_of(job: VideoJob) -> Any:
    """The job's references as the engine's schedule: the main one at frame 0 (else the
    earliest keyframe reference), the keyframe ones at their frames."""
    from colorize.footage.references import ReferenceSchedule, ReferenceSpec

    specs = [ReferenceSpec(job.references.first(), None)]
    specs += [ReferenceSpec(path, frame) for frame, path in job.references.keyframes
              if frame > 0]
    return ReferenceSchedule.from_specs(specs)


def _run_cuts(context: WorkerContext, task: Task, result: TaskResult) -> None:
    """Cut frames of the video: detected on its frames (``auto``) or read from a file; and the
    frame index the shot tasks seek with, written to ``task.frame_index``."""
    from colorize.footage import shots
    from colorize.video.seek import FrameIndex, NotSeekableError, save_not_seekable

    job = task.job
    spec = str(job.option("shots"))
    with _open(job) as source:
        info = source.info
        index: FrameIndex | None = None
        reason = None
        detector = shots.CutDetector(fps=info.average_rate or 25) if spec == "auto" else None
        if detector is None and info.frame_count and not info.frame_count_is_estimate:
            count = info.frame_count        # no decode: the packets alone give the index
            index = source.frame_index() if hasattr(source, "frame_index") else None
        else:
            metas = []
            for frame in source.frames():
                if detector is not None:
                    detector.feed(frame.rgb)
                metas.append(frame.meta)
            count = len(metas)
            try:
                # The frames were decoded anyway: their own numbers and keyframes are the index.
                index = FrameIndex.from_frames(metas)
            except NotSeekableError as error:
                reason = str(error)
        cuts = list(detector.cuts) if detector is not None else \
            shots.read_shots_file(Path(spec), count, fps=info.average_rate)
        if task.frame_index:
            if index is not None:
                index.save(Path(task.frame_index))
            else:
                reason = reason or getattr(source, "not_seekable", None) or "no frame index"
                save_not_seekable(Path(task.frame_index), reason)
    result.cuts, result.frame_count = [c for c in cuts if c > 0], count


def _shot_frames(source: Any, start: int, end: int) -> Iterator[Any]:
    """Frames ``[start, end)`` of ``source``, decoded from the keyframe before ``start``."""
    for frame in source.frames_from(start):
        if frame.meta.index >= end:
            return
        yield frame


def _shot_footage(job: VideoJob, start: int, end: int, frame_size: tuple[int, int]) -> Any:
    """The shot's references as a run of its own: the one that applies at ``start`` first,
    the keyframe references inside the shot at their frames counted from ``start``."""
    from colorize.footage.references import ReferenceSchedule, ReferenceSpec
    from colorize.footage.setup import FootageSetup

    specs = [ReferenceSpec(job.references.for_shot(start), None)]
    specs += [ReferenceSpec(path, frame - start) for frame, path in job.references.keyframes
              if start < frame < end]
    return FootageSetup.prepare(ReferenceSchedule.from_specs(specs), frame_size=frame_size,
                                frame_count=end - start, frame_count_exact=True)


def _use_frame_index(source: Any, path: str) -> None:
    """Seek with the index the cuts task wrote (no scan of the film per shot)."""
    from colorize.video.seek import FrameIndex, NotSeekableError

    if not path or not hasattr(source, "use_frame_index") or not Path(path).is_file():
        return
    try:
        source.use_frame_index(FrameIndex.load(Path(path)))
    except NotSeekableError as error:
        source.set_not_seekable(str(error))     # the cuts task found none: no scan per shot
    except (OSError, ValueError, KeyError) as error:
        logger.debug("frame index %s not used: %s", path, error)


def _run_shot(context: WorkerContext, task: Task, result: TaskResult) -> None:
    from colorize.footage.shot_parts import part_writer
    from colorize.pipeline import to_upright
    from colorize.video.target import resolve_output

    job = task.job
    part = Path(task.part)
    with _open(job) as source:
        info = source.info
        _use_frame_index(source, task.frame_index)
        footage = _shot_footage(job, task.start, task.end, info.upright_size)
        colorizer = context.colorizer(job)
        counter = _Counter(context, task.task_id)
        metas: deque[Any] = deque()

        def frames() -> Iterator[np.ndarray]:
            for frame in _shot_frames(source, task.start, task.end):
                metas.append(frame.meta)
                yield to_upright(frame.rgb, info.rotation)

        target = resolve_output(str(job.output), info, overwrite=True)
        colorized = (colorizer.colorize(frames(), footage.main_reference) if footage.is_plain
                     else colorizer.colorize(frames(), footage.main_reference,
                                             guide=footage.guide()))
        with part_writer(part, target, source, job.option("crf")) as writer:
            for rgb in colorized:
                writer.write(rgb, metas.popleft())
                counter.advance()
            result.frames = writer.count
    expected = task.end - task.start
    if result.frames != expected:
        raise CorruptInputError(
            f"shot {task.shot_index} (frames {task.start}-{task.end - 1}) decoded "
            f"{result.frames} frames", frames_decoded=task.start + result.frames)


def _run_stitch(context: WorkerContext, task: Task, result: TaskResult) -> None:
    from colorize.batch.results import sha256_of
    from colorize.footage.shot_parts import join_encoded_parts, write_frames_of_parts
    from colorize.video.target import resolve_output

    job = task.job
    _remove_stale_partials(job.output)
    parts = [Path(p) for p in task.parts]
    with _open(job) as source:
        target = resolve_output(str(job.output), source.info, overwrite=True)
        if target.kind == "video":
            result.frames = join_encoded_parts(parts, target, source)
        else:
            result.frames = write_frames_of_parts(parts, target, source, job.option("crf"))
    result.sha256 = sha256_of(job.output)
