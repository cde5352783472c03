"""``--dry-run``: what a batch would do and roughly how long, without loading the model.

Per frame the time is the engine's own ``--plan`` estimate (a FLOP count per padded pixel over
a throughput calibrated on the CPU benchmark, ``benchmarks/results/colorize_cpu_*.md``; the GPU
throughputs there are assumptions until GPU figures exist). Each worker also loads the model
once: 1.7 s measured on CPU (same benchmark, "model build").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize.batch.plan import VideoJob

MODEL_LOAD_S = 1.7


@dataclass
class VideoEstimate:
    job: VideoJob
    frames: int | None
    size: tuple[int, int] | None       # (width, height) upright
    seconds: float | None
    problem: str | None


def probe(job: VideoJob) -> tuple[int | None, tuple[int, int] | None, str | None]:
    """Frame count and upright size from the container header, without decoding.

    PyAV directly rather than :func:`colorize.video.source.open_source`, which starts the
    threaded decoder: a header is all an estimate needs, for thousands of files.
    """
    import av

    try:
        with av.open(str(job.input.resolve())) as container:
            streams = container.streams.video
            if not streams:
                return None, None, f"input has no video stream: {job.input}"
            stream = streams[0]
            size = (stream.codec_context.width, stream.codec_context.height)
            frames = int(stream.frames) if stream.frames else None
            if frames is None and stream.duration and stream.time_base and stream.average_rate:
                frames = round(float(stream.duration * stream.time_base * stream.average_rate))
            return frames, size, None
    except (av.FFmpegError, OSError, ValueError) as error:
        return None, None, f"cannot read {job.input} as video: {str(error).splitlines()[0]}"


def estimate_videos(jobs: list[VideoJob], engine_config: Any) -> list[VideoEstimate]:
    from dataclasses import replace

    from colorize import engine

    estimates = []
    for job in jobs:
        frames, size, problem = probe(job)
        problem = job.problem or problem
        seconds = None
        if frames and size and problem is None:
            config = replace(engine_config, max_side=job.option("max_side", engine_config.max_side))
            plan = engine.plan_for(config, (size[1], size[0]))
            seconds = engine.estimate_seconds_per_frame(plan) * frames
        estimates.append(VideoEstimate(job, frames, size, seconds, problem))
    return estimates


def total_seconds(estimates: list[VideoEstimate], workers: int) -> float:
    """Wall time with ``workers`` workers: the work spread evenly, plus one model load each."""
    work = sum(e.seconds or 0.0 for e in estimates)
    return work / max(1, workers) + MODEL_LOAD_S


def describe(estimates: list[VideoEstimate], outdir: Path, workers: int | None,
             skipped: set[str]) -> list[str]:
    from colorize.progress import format_duration

    lines = []
    for e in estimates:
        state = "skip (done)" if str(e.job.input) in skipped else "run"
        if e.problem:
            state = f"fails: {e.problem}"
        size = f"{e.size[0]}x{e.size[1]}" if e.size else "?"
        frames = str(e.frames) if e.frames is not None else "?"
        time = format_duration(e.seconds) if e.seconds is not None else "?"
        lines.append(f"{e.job.index + 1:4d}. {e.job.input}  [{size}, {frames} frames, ~{time}]  {state}")
        lines.append(f"      references: {e.job.references.describe()}")
        lines.append(f"      output:     {e.job.output}")
        if e.job.options:
            lines.append("      options:    " + ", ".join(f"{k}={v}" for k, v in sorted(e.job.options.items())))
    todo = [e for e in estimates if str(e.job.input) not in skipped and not e.problem]
    frames = sum(e.frames or 0 for e in todo)
    lines.append(f"videos: {len(estimates)} ({len(todo)} to run, {len(skipped)} done already, "
                 f"{sum(1 for e in estimates if e.problem)} with problems), {frames} frames to colorize")
    one = total_seconds(todo, 1)
    if workers:
        lines.append(f"estimated time: {format_duration(total_seconds(todo, workers))} with "
                     f"{workers} worker(s) (rough: from the engine's per-frame estimate)")
    else:
        lines.append(f"estimated time: {format_duration(one)} on one worker; with N workers "
                     "about that divided by N (rough: from the engine's per-frame estimate)")
    lines.append(f"results file:   {outdir / 'batch.jsonl'}")
    return lines
