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


@click.command(
    "keyframes",
    epilog=FOLDER_HELP + "\n" + KEYFRAMES_EXIT_CODES,
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
              help="Shots whose stills are at least this alike (layout and tones, 1 = the same "
              "picture) share one reference. Raise it when different set-ups share a group, "
              "lower it when a returning set-up gets its own.")
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
@click.option("-q", "--quiet", is_flag=True, help="Only print errors and the paths written.")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def keyframes_command(ctx: click.Context, **options: Any) -> None:
    """Pick the frames of INPUT that need a colour reference and write them as grey stills.

    Example: colorize keyframes film.mp4 -o refs --shots auto
    """
    if options["quiet"] and options["verbose"]:
        raise click.UsageError("--quiet and --verbose exclude each other")
    folder: Path = options["folder"]
    with console_logging(quiet=options["quiet"], verbose=options["verbose"]), \
            reported_errors(ctx, interrupted=f"{folder} keeps its previous keyframes"):
        data = _pick(options)
        review = _review(options, data)
    groups = len({k["group"] for k in data["keyframes"]})
    click.echo(f"{len(data['keyframes'])} keyframe(s) in {groups} group(s): "
               f"{folder / 'keyframes.json'}")
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


def _review(options: dict[str, Any], data: dict[str, Any]) -> Path:
    from colorize.references.review import write_review

    return write_review(options["folder"], data, input_arg=str(options["input_path"]))
