"""The review of a keyframes folder: ``DIR/review.html`` and a contact sheet ``DIR/review.png``.

The page links its pictures relatively (``gray/ref_000120.png``, ``ref_000120.png``), so it
opens from the file system without a server, moves with the folder, and shows a replaced
colour reference on the next reload without being written again. For each keyframe it shows
the grey still beside its colour reference (or says which file to make), the frame it serves
and the frame the picture comes from, the shot's range and group, why it was chosen, its
score, and the command that makes its colour reference again. The contact sheet is one PNG
with the same pairs, small, for a quick look or to attach to a message.

To reject a reference, delete its colour file or replace it with a hand-painted one; the next
``--generate`` fills in only what is missing.
"""

from __future__ import annotations

import html
import io
import math
import os
import shlex
from pathlib import Path
from typing import Any, Sequence

from colorize.references.store import atomic_write

__all__ = ["REVIEW_HTML", "REVIEW_PNG", "pick_options", "regenerate_command", "write_review"]

REVIEW_HTML = "review.html"
REVIEW_PNG = "review.png"
#: Longest side of a picture on the contact sheet (smaller beyond SMALL_FROM keyframes), and
#: the fewest columns of pairs; a long film gets more columns so the sheet stays near square.
SHEET_SIDE = 160
SMALL_SHEET_SIDE = 96
SMALL_FROM = 60
SHEET_COLUMNS = 3
_CAPTION_HEIGHT = 30
_GAP = 8


def pick_options(data: dict[str, Any]) -> list[str]:
    """The ``colorize keyframes`` options that made the pick ``data`` (``keyframes.json``), so
    that a command built from them reuses it instead of picking anew."""
    from colorize.references.picker import PickConfig

    words: list[str] = []
    if data.get("shots"):
        words += ["--shots", str(data["shots"])]
    if data.get("report"):
        words += ["--report", str(data["report"])]
    settings, defaults = data.get("settings", {}), PickConfig()
    for option, name in (("--group-threshold", "group_threshold"),
                         ("--sample-every", "sample_every"), ("--search-frames", "search_frames")):
        if name in settings and settings[name] != getattr(defaults, name):
            words += [option, str(settings[name])]
    image_fps = data.get("signature", {}).get("image_fps")
    if image_fps not in (None, 25.0):
        words += ["--fps", f"{image_fps:g}"]
    return words


def regenerate_command(input_arg: str, folder: Path, frame: int, workflow: str | None = None,
                       servers: Sequence[str] = (), pick: Sequence[str] = ()) -> str:
    """The command that makes the colour reference of keyframe ``frame`` again; ``pick``: the
    pick's own options (:func:`pick_options`), without which the command would pick anew."""
    words = ["colorize", "keyframes", input_arg, "-o", str(folder), *pick, "--generate",
             workflow or "WORKFLOW"]
    for server in servers or ("URL",):
        words += ["--server", server]
    words += ["--regenerate", str(frame)]
    return " ".join(word if word in ("WORKFLOW", "URL") else shlex.quote(word) for word in words)


def write_review(folder: Path, data: dict[str, Any], *, input_arg: str,
                 workflow: str | None = None, servers: Sequence[str] = ()) -> Path:
    """Write ``review.html`` and ``review.png`` for the keyframes ``data`` of ``folder``;
    returns the page's path. Raises OutputWriteError."""
    page = folder / REVIEW_HTML
    text = _page(folder, data, input_arg, workflow, servers)
    atomic_write(page, text.encode("utf-8"))
    atomic_write(folder / REVIEW_PNG, _contact_sheet(folder, data))
    return page


def _page(folder: Path, data: dict[str, Any], input_arg: str, workflow: str | None,
          servers: Sequence[str]) -> str:
    keyframes = data["keyframes"]
    present = sum(1 for k in keyframes if (folder / k["colour"]).is_file())
    groups = len({k["group"] for k in keyframes})
    rows = []
    for keyframe in keyframes:
        colour = keyframe["colour"]
        if (folder / colour).is_file():
            colour_cell = f'<img src="{html.escape(colour)}" alt="colour reference">'
        else:
            colour_cell = (f'<div class="missing">no colour reference yet:<br>colour '
                           f'<code>{html.escape(keyframe["gray"])}</code><br>and save it as '
                           f'<code>{html.escape(colour)}</code></div>')
        problems = ", ".join(keyframe["problems"])
        warning = f'<p class="warn">best picture found is {html.escape(problems)}</p>' \
            if problems else ""
        command = regenerate_command(input_arg, folder, keyframe["serves"], workflow, servers,
                                     pick_options(data))
        rows.append(f"""
<section id="frame-{keyframe['serves']}">
  <h2>frame {keyframe['serves']:,} <small>{html.escape(keyframe['reason'])}</small></h2>
  <div class="pair">
    <figure><img src="{html.escape(keyframe['gray'])}" alt="grey still">
      <figcaption>grey still, picture from frame {keyframe['source_frame']:,}</figcaption>
    </figure>
    <figure>{colour_cell}<figcaption>{html.escape(colour)}</figcaption></figure>
  </div>
  <p>shot {keyframe['shot']}: frames {keyframe['shot_start']:,}-{keyframe['shot_end'] - 1:,}
     &middot; group {keyframe['group']} &middot; score {keyframe['score']:.3f}</p>
  {warning}
  <p>make it again: <code>{html.escape(command)}</code></p>
</section>""")
    title = f"Keyframes of {os.path.basename(data['input'])}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #f4f4f4; color: #222; }}
section {{ background: #fff; padding: 0.8em 1em; margin: 0 0 1em; border-radius: 6px; }}
h2 {{ margin: 0 0 0.4em; font-size: 1.1em; }} h2 small {{ color: #777; font-weight: normal; }}
.pair {{ display: flex; gap: 1em; flex-wrap: wrap; }}
figure {{ margin: 0; }} img {{ max-width: 420px; max-height: 300px; display: block; }}
figcaption {{ font-size: 0.85em; color: #555; }}
.missing {{ width: 300px; height: 160px; border: 2px dashed #c66; padding: 0.5em;
  font-size: 0.9em; box-sizing: border-box; }}
.warn {{ color: #a40; }} code {{ background: #eee; padding: 0 0.2em; word-break: break-all; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(keyframes)} keyframe(s) in {groups} group(s), {present} colour reference(s) present;
{data['frame_count']:,} frames, {len(data['cuts']) + 1 if data['shots'] else 1} shot(s).
Delete a colour reference or replace it with a hand-painted one to reject it; the next
<code>--generate</code> fills in what is missing. Then colorize with
<code>{html.escape(_colorize_command(input_arg, folder, data))}</code>.</p>
{''.join(rows)}
</body></html>
"""


def _colorize_command(input_arg: str, folder: Path, data: dict[str, Any]) -> str:
    words = ["colorize", input_arg, "--ref-dir", str(folder)]
    if data.get("shots"):
        words += ["--shots", str(data["shots"])]
    return " ".join(shlex.quote(word) for word in words)


def _thumbnail(path: Path, side: int) -> "Any | None":
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            return image
    except (OSError, ValueError):
        return None


def _contact_sheet(folder: Path, data: dict[str, Any]) -> bytes:
    """One PNG: per keyframe the grey still and its colour reference, with a caption."""
    from PIL import Image, ImageDraw

    keyframes = data["keyframes"]
    width, height = data["frame_size"]
    side = SHEET_SIDE if len(keyframes) < SMALL_FROM else SMALL_SHEET_SIDE
    scale = side / max(width, height, 1)
    cell_w, cell_h = max(1, round(width * scale)), max(1, round(height * scale))
    pair_w, pair_h = 2 * cell_w + _GAP, cell_h + _CAPTION_HEIGHT
    columns = max(1, min(max(SHEET_COLUMNS, round(math.sqrt(len(keyframes) / 2))),
                         len(keyframes)))
    rows = max(1, -(-len(keyframes) // columns))
    sheet = Image.new("RGB", (columns * (pair_w + _GAP) + _GAP, rows * (pair_h + _GAP) + _GAP),
                      (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for position, keyframe in enumerate(keyframes):
        left = _GAP + (position % columns) * (pair_w + _GAP)
        top = _GAP + (position // columns) * (pair_h + _GAP)
        for slot, name in enumerate((keyframe["gray"], keyframe["colour"])):
            x = left + slot * (cell_w + _GAP)
            picture = _thumbnail(folder / name, side)
            if picture is None:
                draw.rectangle((x, top, x + cell_w - 1, top + cell_h - 1), outline=(200, 90, 90))
                draw.text((x + 4, top + 4), "no colour yet" if slot else "no still",
                          fill=(200, 90, 90))
            else:
                sheet.paste(picture.resize((cell_w, cell_h)), (x, top))
        caption = (f"frame {keyframe['serves']} ({keyframe['reason']}), group {keyframe['group']}\n"
                   f"shot {keyframe['shot_start']}-{keyframe['shot_end'] - 1}, "
                   f"still from {keyframe['source_frame']}")
        draw.multiline_text((left, top + cell_h + 2), caption, fill=(230, 230, 230), spacing=2)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
