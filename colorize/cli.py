"""The ``colorize`` command: parse options, build the pieces, run, report.

``colorize INPUT --ref REF [-o OUT]`` runs the default ``run`` command; other commands
(``colorize weights ...``, later ``colorize bench``) are subcommands loaded only when used,
so ``import colorize.cli`` stays fast: torch and PyAV are imported inside the command.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from colorize import __version__
from colorize.console import console_logging, reported_errors
from colorize.errors import ColorizeError

if TYPE_CHECKING:  # pragma: no cover
    from colorize.engine import EngineConfig, MemorySettings

logger = logging.getLogger("colorize")

DEFAULT_COMMAND = "run"

#: Subcommands provided by other modules: name -> (module, attribute). Loaded on first use and
#: listed only when their module exists, so the CLI works before they are written.
LAZY_COMMANDS = {
    "weights": ("colorize.weights.cli", "weights_group"),
    "bench": ("colorize.bench_cli", "bench_command"),
    "comfyui": ("colorize.comfyui.cli", "comfyui_group"),
    "batch": ("colorize.batch.cli", "batch_command"),
    "keyframes": ("colorize.references.cli", "keyframes_command"),
}

EXIT_CODES_HELP = """\b
Exit codes:
  0   success
  1   other error caused by input or configuration
  2   bad command line
  3   out of memory even for one frame at the smallest processing size
  4   requested device or precision not available here
  7   the network overflowed half precision (fp16/bf16): rerun with --fp32
  8   shots file (--shots FILE) unreadable, or its cuts unsorted or past the end
  9   no colorizer available (model or weights missing)
  10  input not found or not readable
  11  input has no video stream (or a folder has no images)
  12  input is corrupt or truncated (the message says how many frames decoded)
  13  input cannot be processed as one clip (frame size changes, mixed image sizes)
  14  reference image not found, unreadable or too large; references given
      inconsistently (two for one frame, none for frame 0, past the end)
  15  output already exists (pass --overwrite)
  16  output extension, container or codec not supported
  17  output could not be written (permission, disk full)
  18  an interrupted run left a resume checkpoint (<OUT>.colorize-resume):
      add --resume to continue it, or delete it to start over
  19  the resume checkpoint is damaged or was made for another input,
      reference or settings (the message says what changed)
  20  no checkpoint found and downloads are off (COLORIZE_OFFLINE / HF_HUB_OFFLINE)
  21  checkpoint download failed on every source
  22  downloaded checkpoint fails its size or sha256 check
  23  checkpoint file unreadable, truncated or not a checkpoint
  24  checkpoint is another architecture (missing / mismatched keys listed)
  25  --weights path is unusable
  26  bad weights source URL
  130 interrupted (Ctrl-C); nothing is left at the output path
"""

OUTPUT_RULES_HELP = """\b
Output (-o):
  .mp4 .m4v .mkv .mov  H.264 video (4:4:4 when the size is odd), audio copied
  .webm                VP9 video, Opus audio
  .png .jpg .tif .bmp  one image (single-image input only)
  no extension, trailing '/', or an existing folder
                       PNG frames, named like the input images or 000000.png...
  Default: <input stem>_colorized.<ext> beside the input. Timestamps (also
  variable frame rate), rotation, pixel aspect and audio/subtitle streams are
  kept; colour is tagged BT.709. Writes go to a hidden temporary file that is
  renamed when complete.
"""

#: --memory-mode presets over the memory-bank knobs; "balanced" is ColorMNet's own default.
MEMORY_PRESETS: dict[str, dict[str, Any]] = {
    "low": {
        "max_mid_term_frames": 5,
        "min_mid_term_frames": 2,
        "num_prototypes": 64,
        "max_long_term_elements": 5000,
    },
    "balanced": {},
    "high": {
        "max_mid_term_frames": 20,
        "min_mid_term_frames": 10,
        "num_prototypes": 256,
        "max_long_term_elements": 20000,
    },
}


class DefaultCommandGroup(click.Group):
    """A group that runs :data:`DEFAULT_COMMAND` when the first argument is not a subcommand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self.commands)
        for name, (module, _) in LAZY_COMMANDS.items():
            if _module_exists(module):
                names.add(name)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in LAZY_COMMANDS:
            return None
        module_name, attribute = LAZY_COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
            command = getattr(module, attribute)
        except (ImportError, AttributeError):
            return None
        self.add_command(command, cmd_name)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in ("--version",) and args[0] not in self.list_commands(ctx):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


class RunCommand(click.Command):
    """The default command; its usage line reads ``colorize [OPTIONS] INPUT``."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        path = ctx.parent.command_path if ctx.parent is not None else ctx.command_path
        formatter.write_usage(path, " ".join(self.collect_usage_pieces(ctx)))


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@click.group(
    name="colorize",
    cls=DefaultCommandGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="colorize")
def cli() -> None:
    """Reference-based video colorization with ColorMNet."""


def _positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}")
    return value


@cli.command(
    DEFAULT_COMMAND,
    cls=RunCommand,
    epilog=OUTPUT_RULES_HELP + "\n" + EXIT_CODES_HELP
    + "\n\b\nOther commands: 'colorize weights --help' (download, convert, list checkpoints),"
    "\n'colorize keyframes --help' (pick the frames to colour as references).",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--ref",
    "reference_path",
    metavar="[FRAME=]REF",
    multiple=True,
    help="Colour reference image (any format Pillow reads; EXIF rotation applied). If its size "
    "differs from the frames' it is resized to the (upright) frame size with bilinear "
    "filtering, as ColorMNet's own pipeline does, stretching it if the aspect ratio differs. "
    "Repeatable as FRAME=REF (FRAME: 0-based index in decode order): a keyframe reference, "
    "encoded once at its frame and kept in memory for the rest of its shot. A plain REF (or "
    "0=REF) is the main reference.",
)
@click.option(
    "--ref-dir",
    "reference_dir",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Keyframe references named ref_<frame>.<ext> (CMNET2/HAVC naming: ref_000120.png is "
    "frame 120; ref_000000.png is the main reference). Combines with --ref.",
)
@click.option(
    "--shots",
    metavar="auto|FILE",
    help="Reset memory at each cut, from the latest reference at or before the shot's first "
    "frame: 'auto' finds cuts with PySceneDetect on the decoded frames (extra "
    "colorize-video[shots]); FILE lists cut frames (one per line, each the first frame of a "
    "shot; or a PySceneDetect CSV / CMX3600 EDL; or an FCP 7 XML, FCPX XML or OpenTimelineIO "
    "timeline, extra colorize-video[timeline]).",
)
@click.option(
    "--keep-shots",
    is_flag=True,
    help="Keep each shot's colorized output beside the output (<OUT>.colorize-shots/) with a "
    "fingerprint of its frames, its references, the settings and the weights; a later run with "
    "--keep-shots colorizes only the shots whose fingerprint changed and joins them all by "
    "packet copy. Needs --shots. Replaces an output it made without --overwrite.",
)
@click.option(
    "--report",
    "report_path",
    metavar="PATH.json",
    type=click.Path(path_type=Path),
    help="Write a confidence report: per frame a memory-match score in [0, 1], the reference and "
    "shot in use, and low-score spans with a suggested keyframe; a plot beside it "
    "(<stem>.png, or <stem>.txt without matplotlib).",
)
@click.option(
    "-o",
    "--output",
    "output",
    metavar="OUT",
    default=None,
    help="Output video file, image, or folder of PNG frames (see 'Output' below). "
    "Default: <input stem>_colorized.<ext> beside the input.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cuda", "mps", "cpu"]),
    default="auto",
    show_default=True,
    help="Where the model runs; auto picks CUDA, then MPS, then CPU.",
)
@click.option(
    "--weights",
    "weights",
    metavar="PATH",
    type=click.Path(path_type=Path),
    envvar="COLORIZE_WEIGHTS",
    show_envvar=True,
    help="ColorMNet checkpoint. Default: the one 'colorize weights download' installed.",
)
@click.option("--fp32", "precision", flag_value="fp32", help="Run the model in float32 (the official numbers).")
@click.option(
    "--fp16", "precision", flag_value="fp16", help="Run the model in float16 (CUDA/MPS; on CPU for checking only)."
)
@click.option(
    "--bf16", "precision", flag_value="bf16", help="Run the model in bfloat16 (recent GPUs, CPUs with AMX or AVX512-BF16)."
)
@click.option(
    "--crf",
    type=click.IntRange(0, 63),
    default=None,
    help="Video quality, lower is better: H.264 0-51 (default 18), VP9 0-63 (default 32).",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
    help="Frame rate given to image-folder input when the output is a video.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the output if it exists (atomically)."
)
@click.option(
    "--ref-is-first-frame",
    is_flag=True,
    help="The reference is the colorized first frame of the clip (not an unrelated photo).",
)
@click.option(
    "--memory-mode",
    type=click.Choice(list(MEMORY_PRESETS)),
    default="balanced",
    show_default=True,
    help="Preset for the memory knobs below: low uses less memory (mid-term 5/2 frames, "
    "64 prototypes, 5000 long-term elements), balanced is ColorMNet's default "
    "(10/5, 128, 10000), high keeps more (20/10, 256, 20000). Knobs given explicitly win.",
)
@click.option(
    "--mem-every", type=int, callback=_positive, help="Store a memory frame every N frames (5)."
)
@click.option(
    "--top-k", type=int, callback=_positive, help="Memory entries each pixel attends to (30)."
)
@click.option(
    "--max-mid-term-frames",
    type=int,
    callback=_positive,
    help="Working-memory frames before consolidation into long-term memory (10).",
)
@click.option(
    "--min-mid-term-frames",
    type=int,
    callback=_positive,
    help="Working-memory frames kept after consolidation (5).",
)
@click.option(
    "--num-prototypes",
    type=int,
    callback=_positive,
    help="Long-term prototypes made per consolidation (128).",
)
@click.option(
    "--max-long-term-elements",
    type=int,
    callback=_positive,
    help="Long-term memory size before pruning (10000).",
)
@click.option(
    "--deep-update-every",
    type=int,
    help="Deep-update the hidden state every N frames; -1 follows --mem-every (-1).",
)
@click.option("--no-long-term", is_flag=True, help="Disable long-term memory.")
@click.option(
    "--max-side",
    type=int,
    callback=_positive,
    help="Run the model with the longest side at most N pixels and carry the predicted colour "
    "back onto the full-resolution luminance. Default: full resolution, lowered automatically "
    "when it would not fit the free memory.",
)
@click.option(
    "--chunk-size",
    type=int,
    callback=_positive,
    help="Frames key-encoded together. Default: sized from the free device memory.",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print the plan (device, precision, processing size, chunk size, estimated peak memory) "
    "and exit without colorizing.",
)
@click.option(
    "--checkpoint-every",
    "checkpoint_every",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Save a resume checkpoint in <OUT>.colorize-resume/ every N frames (0: never). "
    "Default: automatic, as often as keeps its cost under 3% of the run (at least 10 s of work "
    "apart). After a crash the same command with --checkpoint-every, or with --resume, "
    "continues from the last checkpoint.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run from its checkpoint beside the output (refused, saying "
    "what changed, if the input, references or settings differ).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only print errors and the output path.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Show details: debug logs, FFmpeg messages, tracebacks."
)
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Colorize INPUT (a video file, a folder of images, or one image) using the colours of REF.

    Example: colorize in.mp4 --ref ref.png -o out.mp4
    """
    if options["quiet"] and options["verbose"]:
        raise click.UsageError("--quiet and --verbose exclude each other")
    if not options["reference_path"] and options["reference_dir"] is None:
        raise click.UsageError("Missing option '--ref' (or '--ref-dir').")
    if options["resume"] and options["checkpoint_every"] == 0:
        raise click.UsageError("--resume needs checkpoints: drop --checkpoint-every 0")
    if options["keep_shots"] and options["shots"] is None:
        raise click.UsageError("--keep-shots keeps shots: add --shots FILE or --shots auto")
    if options["keep_shots"] and options["resume"]:
        raise click.UsageError("--keep-shots continues an interrupted run shot by shot: drop "
                               "--resume")
    memory = _memory_settings(options)
    with console_logging(quiet=options["quiet"], verbose=options["verbose"]), \
            reported_errors(ctx, interrupted="nothing was written"):
        output = _colorize(memory=memory, **options)
    if output is not None:
        click.echo(str(output))


def _memory_settings(options: dict[str, Any]) -> "MemorySettings":
    from colorize.engine import MemorySettings

    values = dict(MEMORY_PRESETS[options["memory_mode"]])
    for name in (
        "mem_every",
        "top_k",
        "max_mid_term_frames",
        "min_mid_term_frames",
        "num_prototypes",
        "max_long_term_elements",
        "deep_update_every",
    ):
        if options[name] is not None:
            values[name] = options[name]
    if options["no_long_term"]:
        values["enable_long_term"] = False
    settings = MemorySettings(**values)
    if settings.min_mid_term_frames >= settings.max_mid_term_frames:
        raise click.BadParameter(
            f"--min-mid-term-frames ({settings.min_mid_term_frames}) must be below "
            f"--max-mid-term-frames ({settings.max_mid_term_frames})",
            param_hint="--min-mid-term-frames",
        )
    return settings


def _colorize(
    *,
    input_path: Path,
    reference_path: Path,
    output: str | None,
    overwrite: bool,
    crf: int | None,
    fps: float,
    quiet: bool,
    memory: "MemorySettings",
    **options: Any,
) -> Path | None:
    """Open, check, build and run; returns the output path (None for --plan).
    Raises ColorizeError."""
    from colorize import engine
    from colorize.pipeline import run_colorization
    from colorize.progress import ProgressReporter
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    image_fps = Fraction(fps).limit_denominator(1001)
    with open_source(input_path, image_fps=image_fps) as source:
        info = source.info
        if options["keep_shots"]:
            from colorize.footage import shot_cache

            target = shot_cache.resolve_kept_output(output, info, overwrite)
        else:
            target = resolve_output(output, info, overwrite)
        footage = _footage_setup(options, reference_path, info, fps)
        reference = footage.main_reference
        if options["plan_only"]:
            _print_plan(options, memory, engine, info, target)
            for line in footage.describe(info.frame_count):
                click.echo(line)
            if options["keep_shots"]:
                _print_kept_shots(options, memory, engine, target, source, footage, crf, fps)
            return None
        config = _engine_config(options, memory, engine, quiet=quiet)
        if options["keep_shots"]:
            knobs = _run_knobs(options, config, engine, target, source, crf, fps)
            shot_cache.run_keeping_shots(
                source, lambda: open_source(input_path, image_fps=image_fps), target, footage,
                knobs, lambda: engine.build_colorizer(config), crf=crf, quiet=quiet)
            return target.path
        # Before the model is loaded: a checkpoint that cannot be used fails fast.
        session = _resume_session(options, config, engine, target, source, input_path,
                                  reference_path, crf, fps)
        colorizer = engine.build_colorizer(config)
        session = _if_resumable(session, colorizer)
        logger.debug(
            "input %s: %s %dx%d rotation %d, %s frames",
            info.path,
            info.kind,
            info.width,
            info.height,
            info.rotation,
            info.frame_count,
        )
        progress = ProgressReporter(
            total=info.frame_count,
            total_is_estimate=info.frame_count_is_estimate,
            enabled=not quiet,
        )
        sink = session.parts if session is not None else open_sink(target, source, crf=crf)
        try:
            frames = run_colorization(source, reference, colorizer, sink, progress,
                                      resume=session, footage=footage)
            if session is not None:
                session.finish(frames)
            else:
                sink.commit()
        except BaseException:
            progress.abandon()  # end the progress line before the error is printed
            if session is not None:
                session.keep()
            else:
                sink.abort()
            raise
    for path in footage.write_report():
        logger.info("report: %s", path)
    return target.path


def _footage_setup(options: dict[str, Any], references: tuple[str, ...], info: Any,
                   fps: float) -> Any:
    """References by frame, shots and report from the options, checked before any work."""
    from colorize.footage.references import (
        ReferenceSchedule,
        parse_ref_option,
        read_reference_dir,
    )
    from colorize.footage.setup import FootageSetup

    specs = [parse_ref_option(text) for text in references]
    if options["reference_dir"] is not None:
        specs += read_reference_dir(options["reference_dir"])
    report_path = options["report_path"]
    if report_path is not None and not report_path.parent.is_dir():
        from colorize.errors import OutputWriteError

        raise OutputWriteError(f"--report folder does not exist: {report_path.parent}")
    frame_rate = info.average_rate or fps
    return FootageSetup.prepare(
        ReferenceSchedule.from_specs(specs), frame_size=info.upright_size,
        frame_count=info.frame_count, frame_count_exact=not info.frame_count_is_estimate,
        shots=options["shots"], fps=frame_rate, report_path=report_path,
        input_label=str(info.path))


def _resume_session(options: dict[str, Any], config: "EngineConfig", engine: Any,
                    target: Any, source: Any, input_path: Path, reference_path: Any,
                    crf: int | None, fps: float) -> Any:
    """The checkpoint/resume session of this run (checked against a checkpoint left beside
    the output), or None (single image, --checkpoint-every 0)."""
    from colorize.footage.fingerprint import build_fingerprint
    from colorize.footage.knobs import reference_files
    from colorize.footage.resume import CheckpointSettings, ResumeSession
    from colorize.video.source import open_source

    settings = CheckpointSettings(every=options["checkpoint_every"], resume=options["resume"])
    knobs = _run_knobs(options, config, engine, target, source, crf, fps)
    fingerprint = build_fingerprint(input_path, reference_files(reference_path), knobs)
    image_fps = Fraction(fps).limit_denominator(1001)
    return ResumeSession.open(target, source, lambda: open_source(input_path, image_fps=image_fps),
                              crf, fingerprint, settings)


def _run_knobs(options: dict[str, Any], config: "EngineConfig", engine: Any, target: Any,
               source: Any, crf: int | None, fps: float) -> dict[str, Any]:
    """Every setting of this run that changes the output (resume and --keep-shots compare
    them), with the device and precision it will actually use."""
    from colorize.devices import choose_device
    from colorize.footage.knobs import run_knobs

    device = choose_device(config.device)
    try:
        precision = engine.resolve_precision(config.precision, device)
    except ColorizeError:
        precision = config.precision  # building the colorizer reports it
    return run_knobs(
        engine_config=config,
        device_type=device.type,
        precision=precision,
        target_kind=target.kind,
        container=target.container_format,
        crf=crf,
        fps=fps if source.info.kind != "video" else None,
        extra_options=options,
    )


def _print_kept_shots(options: dict[str, Any], memory: "MemorySettings", engine: Any,
                      target: Any, source: Any, footage: Any, crf: int | None,
                      fps: float) -> None:
    """--plan --keep-shots: which shots a run would colorize and which it would reuse (the
    frames are decoded to fingerprint them; the model is not loaded)."""
    from colorize.footage import shot_cache
    from colorize.weights import WeightsNotFoundError, resolve_checkpoint

    try:
        weights = Path(resolve_checkpoint(options["weights"], allow_download=False))
    except WeightsNotFoundError:
        knobs, reason = None, "weights not downloaded yet: every shot is colorized"
    else:
        config = _config_from_options(options, memory, engine, weights)
        knobs, reason = _run_knobs(options, config, engine, target, source, crf, fps), None
    plan = shot_cache.plan_shots_quietly(source, target, footage, knobs, reason=reason)
    for line in plan.describe():
        click.echo(line)


def _if_resumable(session: Any, colorizer: Any) -> Any:
    """``session``, or None when the colorizer cannot save its state (test doubles)."""
    import inspect

    if session is None or (
        "guide" in inspect.signature(colorizer.colorize).parameters
        and hasattr(colorizer, "snapshot")
    ):
        return session
    if session.start_frame:
        from colorize.errors import CheckpointUnusableError

        raise CheckpointUnusableError(f"this colorizer cannot continue the resume checkpoint at "
                                      f"{session.folder.path}; delete that folder to start over")
    logger.debug("this colorizer cannot save its state: no resume checkpoints")
    return None


def _print_plan(options: dict[str, Any], memory: "MemorySettings", engine: Any, info: Any,
                target: Any) -> None:
    """--plan: what a run would do, without loading the model or downloading anything."""
    from colorize.footage.resume import CheckpointSettings, describe_checkpoints
    from colorize.video.sink import KEYFRAME_INTERVAL, video_codec

    from colorize.weights import WeightsNotFoundError, resolve_checkpoint

    try:
        weights = str(resolve_checkpoint(options["weights"], allow_download=False))
    except WeightsNotFoundError:
        weights = "not found: the first run downloads it (see 'colorize weights download')"
    config = _config_from_options(options, memory, engine, Path(weights))
    plan = engine.plan_for(config, (info.upright_size[1], info.upright_size[0]))
    click.echo(f"input:            {info.path} ({info.frame_count or 'unknown number of'} frames)")
    click.echo(f"weights:          {weights}")
    for line in plan.describe():
        click.echo(line)
    seconds = engine.estimate_seconds_per_frame(plan)
    total = f", about {seconds * info.frame_count / 60:.1f} min in all" if info.frame_count else ""
    click.echo(f"estimated time:   {seconds:.2f} s/frame (rough){total}")
    if target.kind != "image":
        settings = CheckpointSettings(every=options["checkpoint_every"], resume=options["resume"])
        between = KEYFRAME_INTERVAL[video_codec(target)] if target.kind == "video" else 1
        click.echo(describe_checkpoints(settings, between, seconds))


def _engine_config(
    options: dict[str, Any], memory: "MemorySettings", engine: Any, *, quiet: bool = False
) -> "EngineConfig":
    weights = _resolve_weights(options["weights"], quiet=quiet)
    return _config_from_options(options, memory, engine, weights)


def _config_from_options(
    options: dict[str, Any], memory: "MemorySettings", engine: Any, weights: Path
) -> "EngineConfig":
    return engine.EngineConfig(
        weights=weights,
        device=options["device"],
        precision=options["precision"] or "auto",
        reference_is_first_frame=options["ref_is_first_frame"],
        memory=memory,
        max_side=options["max_side"],
        chunk_size=options["chunk_size"],
    )


def _resolve_weights(explicit: Path | None, *, quiet: bool = False) -> Path:
    """--weights / COLORIZE_WEIGHTS (file or folder), else the search path; downloads the
    checkpoint on first use unless COLORIZE_OFFLINE / HF_HUB_OFFLINE forbid it."""
    from colorize.weights import resolve_checkpoint

    return Path(resolve_checkpoint(explicit, progress=not quiet))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    # Keep SVT-AV1's banner and similar encoder chatter off the terminal.
    os.environ.setdefault("SVT_LOG", "1")
    cli.main(args=argv, prog_name="colorize")


if __name__ == "__main__":  # pragma: no cover
    main()
