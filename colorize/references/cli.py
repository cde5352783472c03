"""``colorize keyframes INPUT -o DIR``: the frames that need a colour reference, as grey stills.

The command is kept to its steps (parse, pick, write, review) so that the generation options
(``--generate WORKFLOW --server URL``) slot in between pick and review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from colorize.console import console_logging, reported_errors
from colorize.references.grouping import DEFAULT_GROUP_THRESHOLD

KEYFRAMES_EXIT_CODES = """\b
Exit codes:
  0   the keyframes folder is written
  1   --report unreadable or made for another input; no frames in the input
  2   bad command line
  8   shots file (--shots FILE) unreadable, or its cuts unsorted or past the end
  10  input not found or not readable
  11  input has no video stream (or a folder has no images)
  12  input is corrupt or truncated
  13  input cannot be processed as one clip (frame size changes, mixed image sizes)
  17  DIR cannot be written (a file, permission, disk full)
  130 interrupted (Ctrl-C); DIR keeps its previous keyframes
"""

GENERATE_EXIT_CODES = """\b
Exit codes of --generate (stills coloured before a failure are kept):
  2   --regenerate names a frame that is not a keyframe
  3   workflow unusable (no LoadImage, no image output), or preflight: a node
      or model is missing on the server; nothing was queued
  4   the server rejected a prompt
  5   a node failed on the server
  6   the server ran out of memory
  7   a prompt was interrupted on the server
  9   a server could not be reached or stopped answering
  14  a grey still is missing or unreadable (run colorize keyframes again)
  27  a still took longer than --timeout
  28  a server sent a reply that could not be understood
  29  a generated picture could not be downloaded, read or written
"""

FOLDER_HELP = """\b
DIR gets:
  gray/ref_NNNNNN.png  one grey still per group of alike shots, named for the
                       first shot start it serves (the picture may come from a
                       later frame of that shot)
  keyframes.json       every keyframe: the frame it serves, the frame its picture
                       comes from, its shot, group, reason and score, its grey
                       still and the colour file expected (ref_NNNNNN.png)
  review.html, review.png  the stills beside their colour references
Colour each still and save it as DIR/ref_NNNNNN.png for every frame its group
serves (see keyframes.json), then: colorize INPUT --ref-dir DIR --shots ...
"""


GENERATE_HELP = """\b
Colour references on ComfyUI servers (--generate WORKFLOW --server URL):
  each grey still goes through WORKFLOW (a registry id such as
  colorize-keyframe-qwen or colorize-keyframe-kontext, or a workflow file with
  one LoadImage and one image output); the picture's colour on the still's own
  luminance is written as ref_NNNNNN.png for every frame its group serves.
  Existing colour files are kept unless --regenerate names their frames.
"""


def _frames(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> frozenset[int]:
    frames: set[int] = set()
    for value in values:
        for word in value.replace(",", " ").split():
            if not word.isdigit():
                raise click.BadParameter(f"{word!r} is not a frame number (e.g. --regenerate 0,120)")
            frames.add(int(word))
    return frozenset(frames)


@click.command(
    "keyframes",
    epilog=FOLDER_HELP + "\n" + GENERATE_HELP + "\n" + KEYFRAMES_EXIT_CODES + "\n" + GENERATE_EXIT_CODES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", "folder", metavar="DIR", required=True,
              type=click.Path(path_type=Path),
              help="Folder for the grey stills, keyframes.json and the review (created if "
              "missing; colour references already in it are kept).")
@click.option("--shots", metavar="auto|FILE",
              help="One keyframe per shot: 'auto' finds cuts with PySceneDetect (extra "
              "colorize-video[shots]); FILE lists cut frames (one per line, or a PySceneDetect "
              "CSV / EDL), as for 'colorize --shots'. Without it: frame 0 only.")
@click.option("--report", "report_path", metavar="PREVIOUS.json",
              type=click.Path(path_type=Path),
              help="Also add a keyframe at each low-confidence span an earlier run's report "
              "('colorize ... --report PREVIOUS.json') suggests.")
@click.option("--group-threshold", type=click.FloatRange(-0.5, 1.0),
              default=DEFAULT_GROUP_THRESHOLD, show_default=True,
              help="Shots whose stills are at least this alike (layout, tones and brightness; "
              "1 = the same picture) share one reference. Raise it when different set-ups "
              "share a group, lower it when a returning set-up gets its own.")
@click.option("--sample-every", type=click.IntRange(min=1), default=2, show_default=True,
              help="Measure every N-th frame of a shot as a candidate still.")
@click.option("--search-frames", type=click.IntRange(min=1), default=300, show_default=True,
              help="Take a shot's still from its first N frames (a reference applies from its "
              "frame on, so a picture from late in a long shot fits its start less).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=25.0,
              show_default=True, help="Frame rate of image-folder input (for an EDL).")
@click.option("--rescan", is_flag=True,
              help="Scan INPUT again even when DIR/keyframes.json was made from the same input, "
              "shots, report and settings (otherwise it is reused as it is).")
@click.option("--generate", "workflow", metavar="WORKFLOW",
              help="Colour the grey stills on ComfyUI: a registry id (colorize-keyframe-qwen, "
              "colorize-keyframe-kontext; 'comfy-run list') or a workflow file (API or UI format).")
@click.option("--server", "servers", metavar="URL", multiple=True, envvar="COMFYUI_API_URL",
              show_envvar=True, help="ComfyUI server for --generate; repeat it to spread the "
              "stills over several.  [default: http://127.0.0.1:8188]")
@click.option("--token", envvar="COMFYUI_API_KEY", show_envvar=True, metavar="TOKEN",
              help="Sent to the servers as 'Authorization: Bearer TOKEN'; never printed or logged.")
@click.option("--prompt", metavar="TEXT", help="--generate: the edit instruction (default: the "
              "workflow's own, a colorize-and-change-nothing-else prompt for the registry ones).")
@click.option("--seed", type=click.IntRange(min=0), help="--generate: the sampler's noise seed.")
@click.option("--regenerate", metavar="FRAMES", multiple=True, callback=_frames,
              help="--generate: colour these keyframes again even though their ref_NNNNNN.png "
              "exists (frames, e.g. 0,120; repeatable).")
@click.option("--keep-generated-luma", is_flag=True,
              help="--generate: keep the generated picture whole instead of only its colour on "
              "the still's own luminance.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="--generate: give up on a still that takes longer (it is cancelled).")
@click.option("-q", "--quiet", is_flag=True, help="Only print errors and the paths written.")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def keyframes_command(ctx: click.Context, **options: Any) -> None:
    """Pick the frames of INPUT that need a colour reference and write them as grey stills.

    Example: colorize keyframes film.mp4 -o refs --shots auto
    """
    if options["quiet"] and options["verbose"]:
        raise click.UsageError("--quiet and --verbose exclude each other")
    if not options["workflow"]:
        # (--token and --server may come from the environment, so they do not count here)
        given = [name for name in ("prompt", "seed", "timeout") if options[name] is not None]
        given += [name for name in ("regenerate", "keep_generated_luma") if options[name]]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} needs --generate WORKFLOW")
    else:
        _servers(options)  # a malformed URL is a usage error, found before the scan
    folder: Path = options["folder"]
    generated = None
    with console_logging(quiet=options["quiet"], verbose=options["verbose"]), \
            reported_errors(ctx, interrupted=f"{folder} keeps its previous keyframes"):
        data = _pick(options)
        try:
            if options["workflow"]:
                generated = _generate(options, data)
        finally:  # also after a failed generation: the page shows what was finished
            review = _review(options, data)
    groups = len({k["group"] for k in data["keyframes"]})
    click.echo(f"{len(data['keyframes'])} keyframe(s) in {groups} group(s): "
               f"{folder / 'keyframes.json'}")
    if generated is not None:
        click.echo(f"{len(generated.generated)} still(s) coloured, {generated.skipped} already "
                   f"done: {len(generated.written)} colour reference(s) written in {folder}")
    click.echo(f"review: {review}")


def _pick(options: dict[str, Any]) -> dict[str, Any]:
    from colorize.references.folder import KeyframesRequest, pick_to_folder
    from colorize.references.picker import PickConfig

    config = PickConfig(group_threshold=options["group_threshold"],
                        sample_every=options["sample_every"],
                        search_frames=options["search_frames"])
    request = KeyframesRequest(input_path=options["input_path"], folder=options["folder"],
                               shots=options["shots"], report_path=options["report_path"],
                               config=config, image_fps=options["fps"],
                               progress=not options["quiet"], rescan=options["rescan"])
    return pick_to_folder(request)


def _generate(options: dict[str, Any], data: dict[str, Any]) -> Any:
    import logging

    from colorize.references.generate import GenerateSettings, generate_references

    logger = logging.getLogger(__name__)
    settings = GenerateSettings(
        workflow=options["workflow"], servers=_servers(options), prompt=options["prompt"],
        seed=options["seed"], regenerate=options["regenerate"],
        keep_generated_luma=options["keep_generated_luma"], token=options["token"],
        timeout=options["timeout"])

    def progress(done: int, total: int, job: Any) -> None:
        logger.info("still %d/%d coloured: %s -> %s", done, total, job.gray.name,
                    ", ".join(f"ref_{frame:06d}.png" for frame in job.targets))

    return generate_references(options["folder"], data["groups"], settings, on_progress=progress)


def _servers(options: dict[str, Any]) -> tuple[str, ...]:
    from runner.client import DEFAULT_SERVER, normalise_server

    try:
        return tuple(normalise_server(server) for server in options["servers"]) or (DEFAULT_SERVER,)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--server") from None


def _review(options: dict[str, Any], data: dict[str, Any]) -> Path:
    from colorize.references.review import write_review

    workflow = options.get("workflow")
    return write_review(options["folder"], data, input_arg=str(options["input_path"]),
                        workflow=workflow, servers=_servers(options) if workflow else ())
