"""``colorize batch SOURCE -o OUTDIR``: colorize a folder or manifest of videos unattended."""

from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path
from typing import Any, Iterator

import click

from colorize.console import console_logging, reported_errors
from colorize.errors import ColorizeError

logger = logging.getLogger("colorize")

#: Exit code when the batch ran but at least one video failed (the others are done).
SOME_FAILED_EXIT_CODE = 5

BATCH_EXIT_CODES = """\b
Exit codes:
  0   every video done (or already done and skipped)
  1   SOURCE, manifest or an option is unusable (nothing was run)
  2   bad command line
  5   at least one video failed; the others are done (reasons in OUTDIR/batch.jsonl)
  6   --ray: Ray is not installed or the cluster cannot be reached
  9, 20-26  the checkpoint cannot be found, fetched or read (as for 'colorize')
  130 interrupted (Ctrl-C); finished videos are recorded, unfinished ones leave nothing
"""

SOURCE_HELP = """\b
SOURCE:
  a folder   every video in it; clip.mp4 takes clip.png / clip.jpg beside it
             and/or keyframe references clip.refs/ref_000120.png (frame 120)
  a manifest .csv (header row) or .jsonl: input, references, output, and
             per-video options crf, max_side, ref_is_first_frame, fps, shots
             (CSV references: 'ref.png' or '0=a.png;120=b.png', ';'-separated)
OUTDIR/batch.jsonl gets one line per video (ok / failed / skipped); rerunning
the same command skips videos whose output is complete and unchanged.
"""


@click.command(
    "batch",
    epilog=SOURCE_HELP + "\n" + BATCH_EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=Path),
              help="Folder for the outputs and batch.jsonl.")
@click.option("--ray", "ray_address", metavar="local|auto|ADDRESS", default=None,
              help="Run on Ray: 'local' starts Ray here, 'auto' joins this machine's cluster, "
              "ray://HOST:PORT a remote one (needs colorize-video[ray]). Default: local workers.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes (default: one per GPU, or one on CPU).")
@click.option("--cpus-per-task", type=click.IntRange(min=1), default=None,
              help="--ray without GPUs: CPUs per colorize task (default: a whole node).")
@click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Times a task is run again when its worker dies.")
@click.option("--shots", metavar="auto|FILE", default=None,
              help="Split each video at its cuts (detected, or listed in FILE) into independent "
              "tasks, each shot colorized from the reference that applies to it, then stitched.")
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), default="auto",
              show_default=True)
@click.option("--weights", type=click.Path(path_type=Path), envvar="COLORIZE_WEIGHTS",
              show_envvar=True, help="ColorMNet checkpoint (must be readable by every worker).")
@click.option("--fp32", "precision", flag_value="fp32", help="Run the model in float32.")
@click.option("--fp16", "precision", flag_value="fp16", help="Run the model in float16 (GPU).")
@click.option("--bf16", "precision", flag_value="bf16", help="Run the model in bfloat16.")
@click.option("--crf", type=click.IntRange(0, 63), default=None, help="Video quality (as colorize).")
@click.option("--max-side", type=click.IntRange(min=1), default=None,
              help="Longest side the model runs at (as colorize).")
@click.option("--ref-is-first-frame", is_flag=True, default=None,
              help="References are the colorized first frames.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan (videos, references, outputs, estimated time) and exit.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs.")
@click.pass_context
def batch_command(ctx: click.Context, **options: Any) -> None:
    """Colorize every video of SOURCE (a folder or a manifest) into OUTDIR.

    Example: colorize batch films/ -o colorized/    (add --ray auto on a Ray cluster)
    """
    if options["quiet"] and options["verbose"]:
        raise click.UsageError("--quiet and --verbose exclude each other")
    with console_logging(quiet=options["quiet"], verbose=options["verbose"]), \
            reported_errors(ctx, interrupted="finished videos are recorded in batch.jsonl"), \
            _sigterm_interrupts():
        code = _batch(**options)
    ctx.exit(code)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a scheduler or ``kill``) stops the batch like Ctrl-C: workers are stopped and
    what finished stays recorded, instead of the driver vanishing with workers still running."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _batch(*, source: Path, outdir: Path, ray_address: str | None, workers: int | None,
           cpus_per_task: int | None, max_retries: int, shots: str | None, device: str,
           weights: Path | None, precision: str | None, crf: int | None, max_side: int | None,
           ref_is_first_frame: bool | None, dry_run: bool, quiet: bool, verbose: bool) -> int:
    from colorize.batch.plan import PlanError, build_plan
    from colorize.batch.results import ResultsFile

    if shots not in (None, "auto") and not Path(shots).is_file():
        raise PlanError(f"--shots: no such file {shots}; give 'auto' or a file of cut frames")
    defaults = {"crf": crf, "max_side": max_side, "ref_is_first_frame": ref_is_first_frame,
                "shots": str(Path(shots).resolve()) if shots not in (None, "auto") else shots}
    plan = build_plan(source, outdir, defaults)
    results = ResultsFile(outdir)
    if dry_run:
        return _dry_run(plan, results, weights, device, precision, workers, ray_address)
    from colorize.batch.tasks import WorkerSettings

    weights_path = _resolve_weights(weights, quiet=quiet)
    settings = WorkerSettings(weights=str(weights_path.resolve()), device=device,
                              precision=precision or "auto")
    return run(plan, results, settings, ray_address=ray_address, workers=workers or 0,
               cpus_per_task=cpus_per_task, max_retries=max_retries, quiet=quiet)


def run(plan: Any, results: Any, settings: Any, *, ray_address: str | None = None,
        workers: int = 0, cpus_per_task: int | None = None, max_retries: int = 3,
        quiet: bool = False, executor: Any = None) -> int:
    """Run ``plan`` and print the summary; returns the exit code (also used by tests)."""
    from colorize.batch.progress import BatchProgress
    from colorize.batch.runner import run_batch

    if executor is None:
        executor = make_executor(settings, ray_address, workers, cpus_per_task, max_retries)
    logger.info("%d video(s), %s", len(plan.jobs), executor.description)
    progress = BatchProgress(videos=len(plan.jobs), enabled=not quiet,
                             total_frames=_known_frames(plan.jobs))
    summary = run_batch(plan, executor, results, weights_label=Path(settings.weights).name,
                        progress=progress)
    ok, failed, skipped = summary.count("ok"), summary.count("failed"), summary.count("skipped")
    for record in summary.records:
        if record.status == "failed":
            click.echo(f"failed: {record.input}: {record.error}", err=True)
    click.echo(f"{ok} done, {skipped} skipped (already done), {failed} failed; "
               f"{summary.frames} frames in {summary.seconds:.1f} s, "
               f"{summary.model_loads} model load(s); results: {results.path}")
    return SOME_FAILED_EXIT_CODE if failed else 0


def make_executor(settings: Any, ray_address: str | None, workers: int,
                  cpus_per_task: int | None, max_retries: int) -> Any:
    if ray_address:
        from colorize.batch.ray_executor import RayExecutor

        return RayExecutor(settings, ray_address, cpus_per_task=cpus_per_task,
                           max_retries=max_retries)
    from colorize.batch.local import LocalExecutor

    return LocalExecutor(settings, workers=workers, max_retries=max_retries)


def _known_frames(jobs: list[Any]) -> int | None:
    """Total frames from the container headers, for the ETA (None if any is unknown)."""
    from colorize.batch.estimate import probe

    total = 0
    for job in jobs:
        frames, _, _ = probe(job) if not job.problem else (0, None, None)
        if frames is None:
            return None
        total += frames
    return total


def _resolve_weights(explicit: Path | None, *, quiet: bool) -> Path:
    from colorize.weights import resolve_checkpoint

    return Path(resolve_checkpoint(explicit, progress=not quiet))


def _dry_run(plan: Any, results: Any, weights: Path | None, device: str, precision: str | None,
             workers: int | None, ray_address: str | None) -> int:
    from colorize.batch.estimate import describe, estimate_videos
    from colorize.batch.local import default_worker_count
    from colorize.engine import EngineConfig

    try:
        from colorize.weights import resolve_checkpoint

        weights_path = Path(resolve_checkpoint(weights, allow_download=False))
    except ColorizeError:
        weights_path = Path("checkpoint-not-found")
    config = EngineConfig(weights=weights_path, device=device,  # type: ignore[arg-type]
                          precision=precision or "auto")  # type: ignore[arg-type]
    estimates = estimate_videos(plan.jobs, config)
    skipped = {str(job.input) for job in plan.jobs
               if results.completed(str(job.input), job.output,
                                    job.fingerprint(weights_path.name)) is not None}
    count = None if ray_address else (workers or default_worker_count(device)[0])
    for line in describe(estimates, plan.outdir, count, skipped):
        click.echo(line)
    return 0
