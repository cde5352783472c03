"""The driver: skip what is done, submit the rest, turn task results into result lines.

Without ``shots`` a video is one ``video`` task. With ``shots`` (``auto`` or a file) it is a
``cuts`` task, then one ``shot`` task per shot (independent: each starts from an empty memory
and the reference that applies to it, which is what a single run does at a cut), then one
``stitch`` task that writes the output in order with the input's timing and audio.

Only this module writes ``batch.jsonl``, once per video, whatever the executor retried.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from colorize.batch.executor import Executor, FramesDone, TaskFinished
from colorize.batch.plan import BatchPlan, VideoJob
from colorize.batch.progress import BatchProgress
from colorize.batch.results import ResultRecord, ResultsFile
from colorize.batch.tasks import Task, TaskResult
from colorize.errors import ColorizeError

logger = logging.getLogger(__name__)

PARTS_DIR = ".parts"
FRAME_INDEX = "frame-index.json"
POLL_S = 0.5


@dataclass
class BatchSummary:
    records: list[ResultRecord] = field(default_factory=list)
    model_loads: int = 0
    frames: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)


@dataclass
class _Video:
    job: VideoJob
    fingerprint: str
    seconds: float = 0.0
    frames: int = 0
    device: str | None = None
    shots: list[tuple[int, int]] = field(default_factory=list)
    parts: dict[int, str] = field(default_factory=dict)
    open_tasks: set[str] = field(default_factory=set)
    failed: TaskResult | None = None
    finished: bool = False

    @property
    def parts_dir(self) -> Path:
        return self.job.output.parent / PARTS_DIR / f"{self.job.index:05d}-{self.job.input.stem}-{self.fingerprint}"

    @property
    def frame_index(self) -> str:
        """Where the cuts task leaves the frame index the shot tasks seek with."""
        return str(self.parts_dir / FRAME_INDEX)


def shot_ranges(cuts: list[int], frame_count: int) -> list[tuple[int, int]]:
    """Cut frames (each the first frame of a shot) -> (start, end) ranges covering the video."""
    from colorize.footage.shots import shots_from_cuts

    return [(shot.start, shot.end) for shot in shots_from_cuts(cuts, frame_count)]


def run_batch(plan: BatchPlan, executor: Executor, results: ResultsFile, *, weights_label: str,
              progress: BatchProgress) -> BatchSummary:
    summary = BatchSummary()
    started = time.monotonic()
    videos: dict[int, _Video] = {}
    owners: dict[str, int] = {}

    def finish(video: _Video, record: ResultRecord) -> None:
        video.finished = True
        results.append(record)
        summary.records.append(record)
        progress.video_finished(record.status, record.frames or 0)
        if record.status == "failed":
            logger.warning("%s failed: %s", video.job.input, record.error)
        shutil.rmtree(video.parts_dir, ignore_errors=True)

    def submit(video: _Video, task: Task) -> None:
        owners[task.task_id] = video.job.index
        video.open_tasks.add(task.task_id)
        executor.submit(task)

    for job in plan.jobs:
        video = _Video(job, job.fingerprint(weights_label))
        previous = results.completed(str(job.input), job.output, video.fingerprint)
        if previous is not None:
            finish(video, ResultRecord(
                input=str(job.input), status="skipped", output=str(job.output),
                sha256=previous.get("sha256"), frames=previous.get("frames"),
                seconds=0.0, device=previous.get("device"), fingerprint=video.fingerprint,
                shots=previous.get("shots")))
            continue
        videos[job.index] = video
        if job.option("shots") and not job.problem:
            video.parts_dir.mkdir(parents=True, exist_ok=True)
            submit(video, Task(f"{job.index}:cuts", "cuts", job, frame_index=video.frame_index))
        else:
            submit(video, Task(f"{job.index}:video", "video", job))

    try:
        while any(not v.finished for v in videos.values()):
            for event in executor.poll(POLL_S):
                if isinstance(event, FramesDone):
                    if not event.task_id.endswith(":stitch"):
                        progress.add_frames(event.frames)
                    continue
                assert isinstance(event, TaskFinished)
                result = event.result
                index = owners.get(result.task_id)
                if index is None or index not in videos:
                    continue
                video = videos[index]
                if result.task_id not in video.open_tasks:
                    continue   # a duplicate report: each task counts once
                video.open_tasks.discard(result.task_id)
                summary.model_loads += int(result.model_loaded)
                _on_result(video, result, submit, finish)
    except BaseException:
        progress.abandon()  # end the progress line before the error is printed
        executor.close(abort=True)
        raise
    executor.close()
    for parts in {job.output.parent / PARTS_DIR for job in plan.jobs}:
        with contextlib.suppress(OSError):
            parts.rmdir()   # only when empty: another batch may share OUTDIR
    progress.finish()
    summary.seconds = time.monotonic() - started
    summary.frames = progress.frames
    # Report in plan order, whatever order they finished in.
    order = {str(job.input): job.index for job in plan.jobs}
    summary.records.sort(key=lambda r: order.get(r.input, 0))
    return summary


def _on_result(video: _Video, result: TaskResult, submit, finish) -> None:
    job = video.job
    kind = result.task_id.split(":")[1]
    if video.finished:
        return
    video.seconds += result.seconds
    video.device = result.device or video.device
    if not result.ok:
        video.failed = video.failed or result
        if kind in ("video", "cuts", "stitch") or not video.open_tasks:
            finish(video, _failed(video, video.failed))
        return
    if kind == "video":
        finish(video, _ok(video, result.frames, result.sha256))
    elif kind == "cuts":
        try:
            video.shots = shot_ranges(result.cuts, result.frame_count or 0)
        except ColorizeError as error:
            finish(video, _failed(video, TaskResult(result.task_id, False, str(error),
                                                    error.exit_code)))
            return
        if not video.shots:
            finish(video, _failed(video, TaskResult(result.task_id, False, "no frames", 12)))
            return
        video.parts_dir.mkdir(parents=True, exist_ok=True)
        for number, (start, end) in enumerate(video.shots):
            # The suffix is neutral: a part is an MP4 in the output's codec, or lossless frames.
            part = str(video.parts_dir / f"shot_{number:05d}.part")
            video.parts[number] = part
            submit(video, Task(f"{job.index}:shot:{number}", "shot", job, shot_index=number,
                               start=start, end=end, part=part, frame_index=video.frame_index))
    elif kind == "shot":
        video.frames += result.frames
        if video.failed is not None and not video.open_tasks:
            finish(video, _failed(video, video.failed))
        elif not video.open_tasks:
            parts = tuple(video.parts[n] for n in range(len(video.shots)))
            submit(video, Task(f"{job.index}:stitch", "stitch", job, parts=parts))
    elif kind == "stitch":
        finish(video, _ok(video, result.frames, result.sha256, shots=len(video.shots)))


def _ok(video: _Video, frames: int, sha256: str | None, shots: int | None = None) -> ResultRecord:
    return ResultRecord(input=str(video.job.input), status="ok", output=str(video.job.output),
                        sha256=sha256, frames=frames, seconds=round(video.seconds, 3),
                        device=video.device, fingerprint=video.fingerprint, shots=shots)


def _failed(video: _Video, result: TaskResult) -> ResultRecord:
    return ResultRecord(input=str(video.job.input), status="failed", output=str(video.job.output),
                        seconds=round(video.seconds, 3), device=video.device, error=result.error,
                        exit_code=result.exit_code, fingerprint=video.fingerprint)
