"""Keyframe references, shots and the confidence report on the nodes, over :mod:`colorize.footage`.

The nodes take what ``colorize --ref FRAME=PATH --ref-dir DIR --shots ... --report`` takes, in
ComfyUI's terms: the main reference and keyframe images as IMAGE inputs (or a folder of
``ref_NNNNNN.png`` in ComfyUI's input directory), shots as text. Everything is turned into the
CLI's own :class:`~colorize.footage.references.ReferenceSchedule` and
:class:`~colorize.footage.setup.FootageSetup`, so the checks, the messages, the cut detector,
the engine guide and the report are the CLI's. ComfyUI-free; torch only to read IMAGE tensors.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from colorize.comfyui import images as image_io
from colorize.comfyui.errors import NodeInputError
from colorize.footage.references import ReferenceSchedule, ReferenceSpec, read_reference_dir
from colorize.reference import load_reference, resize_to

if TYPE_CHECKING:  # pragma: no cover
    from fractions import Fraction

    import torch

    from colorize.footage.setup import FootageSetup

#: The custom type name of a keyframe list between nodes.
KEYFRAMES_TYPE = "COLORIZE_KEYFRAMES"
#: The label (in messages and the report) of the main reference input.
MAIN_LABEL = "reference"
SHOTS_NONE = "none"
SHOTS_AUTO = "auto"

_ENTRY_SPLIT = re.compile(r"[,;\n]")
_FRAMES_SPLIT = re.compile(r"[+\s]+")


@dataclass(frozen=True)
class Keyframe:
    """One keyframe reference: the frame it applies from and its picture.

    ``rgb`` holds an IMAGE input at its own size; ``path`` a file read when its frame comes
    (as the CLI reads ``--ref FRAME=PATH``). ``label`` names it in messages and the report.
    """

    frame: int
    label: str
    origin: str
    rgb: np.ndarray | None = None
    path: Path | None = None

    def spec(self) -> ReferenceSpec:
        return ReferenceSpec(Path(self.label), self.frame, origin=self.origin)


@dataclass(frozen=True)
class Keyframes:
    """The value of a ``COLORIZE_KEYFRAMES`` link: keyframes in frame order (immutable, since
    ComfyUI may hand one output to several nodes and keep it between prompts)."""

    items: tuple[Keyframe, ...] = ()

    def joined(self, other: "Keyframes | None") -> "Keyframes":
        """Both lists; two keyframes for one frame are reported when the run is set up."""
        if other is None:
            return self
        return Keyframes(tuple(sorted(other.items + self.items, key=lambda k: k.frame)))

    @property
    def frames(self) -> list[int]:
        return [item.frame for item in self.items]


# -- building keyframes ------------------------------------------------------------------------


def parse_frame_entries(text: str, what: str = "frames") -> list[list[int]]:
    """``"0, 120+300, 450"`` -> ``[[0], [120, 300], [450]]``: one entry per image, an entry
    naming one frame or several joined by ``+`` (one picture serving several shot starts)."""
    entries: list[list[int]] = []
    for raw in _ENTRY_SPLIT.split(text or ""):
        raw = raw.strip()
        if not raw:
            continue
        frames = []
        for token in _FRAMES_SPLIT.split(raw):
            if not token:
                continue
            if not token.isdigit():
                raise NodeInputError(
                    f"{what}: {token!r} is not a frame number; write one entry per image, e.g. "
                    "'0, 120, 300' (frames 0-based in decode order; '120+300': one image for both)")
            frames.append(int(token))
        entries.append(frames)
    return entries


def keyframes_from_batch(images: "torch.Tensor", frames_text: str, origin: str,
                         earlier: Keyframes | None = None) -> Keyframes:
    """An IMAGE batch and its frames (one entry per image) as keyframes, after ``earlier``."""
    image_io.check_batch(images, "the keyframe images")
    entries = parse_frame_entries(frames_text)
    count = int(images.shape[0])
    if len(entries) != count:
        listed = ", ".join("+".join(map(str, entry)) for entry in entries) or "none"
        raise NodeInputError(
            f"{count} image(s) but {len(entries)} frame entr{'y' if len(entries) == 1 else 'ies'} "
            f"({listed}); give one frame per image, in the batch's order")
    items = []
    for index, frames in enumerate(entries):
        rgb = image_io.to_rgb(images[index])
        for frame in frames:
            items.append(Keyframe(frame, f"keyframe {frame} (batch image {index})", origin, rgb=rgb))
    return Keyframes(tuple(sorted(items, key=lambda k: k.frame))).joined(earlier)


def keyframes_from_folder(folder: Path, label_root: Path, origin: str,
                          earlier: Keyframes | None = None) -> Keyframes:
    """The ``ref_NNNNNN.<ext>`` files of ``folder`` (``colorize --ref-dir``'s naming), each
    labelled by its path below ``label_root``; read when their frame comes."""
    specs = read_reference_dir(folder, origin=origin)
    items = []
    for spec in specs:
        try:
            label = spec.path.relative_to(label_root).as_posix()
        except ValueError:
            label = str(spec.path)
        items.append(Keyframe(int(spec.frame or 0), label, origin, path=spec.path))
    return Keyframes(tuple(items)).joined(earlier)


# -- shots ---------------------------------------------------------------------------------------


def parse_shots(text: str | None) -> tuple[str | None, list[int] | None]:
    """``none`` -> no shots; ``auto`` -> the CLI's cut detector; ``"48, 96"`` -> those cuts.

    Returns ``(shots, cuts)`` as :meth:`FootageSetup.prepare` takes them.
    """
    value = (text or "").strip()
    if value.lower() in ("", SHOTS_NONE):
        return None, None
    if value.lower() == SHOTS_AUTO:
        return SHOTS_AUTO, None
    cuts = []
    for token in re.split(r"[,;\s]+", value):
        if not token:
            continue
        if not token.isdigit():
            raise NodeInputError(
                f"shots: {token!r} is not a frame number; give none, auto, or the cut frames "
                "(each the first frame of a shot, 0-based), e.g. '48, 96'")
        cuts.append(int(token))
    return None, cuts


# -- one run's set-up ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FootageInputs:
    """What a Colorize node was given beyond its frames: the main reference, keyframes, shots."""

    reference: "torch.Tensor | None" = None
    keyframes: Keyframes | None = None
    shots: str = SHOTS_NONE

    def prepare(self, *, frame_size: tuple[int, int], frame_count: int | None,
                frame_count_exact: bool, fps: "float | Fraction | None" = None,
                input_label: str | None = None) -> "FootageSetup":
        """The CLI's footage set-up for these inputs: every check (two references for one frame,
        none for frame 0, a frame past the end, bad cuts) before any work."""
        from colorize.footage.setup import FootageSetup

        keyframes = self.keyframes.items if self.keyframes is not None else ()
        images: dict[Path, np.ndarray] = {}
        files: dict[Path, Path] = {}
        specs: list[ReferenceSpec] = []
        if self.reference is not None:
            images[Path(MAIN_LABEL)] = image_io.reference_rgb(self.reference)
            specs.append(ReferenceSpec(Path(MAIN_LABEL), None, origin="the reference input"))
        elif not keyframes:
            raise NodeInputError("no reference: connect a reference image (or keyframes with one "
                                 "for frame 0)")
        elif 0 not in {item.frame for item in keyframes}:
            raise NodeInputError(
                f"no reference for frame 0 (the first keyframe is for frame {min(k.frame for k in keyframes)}): "
                "connect a reference image, or add a keyframe for frame 0")
        for item in keyframes:
            specs.append(item.spec())
            if item.rgb is not None:
                images[Path(item.label)] = item.rgb
            elif item.path is not None:
                files[Path(item.label)] = item.path

        def read(label: Path, size: tuple[int, int]) -> np.ndarray:
            if label in images:
                return resize_to(images[label], size)
            return load_reference(files.get(label, label), size)

        shots, cuts = parse_shots(self.shots)
        return FootageSetup.prepare(
            ReferenceSchedule.from_specs(specs), frame_size=frame_size, frame_count=frame_count,
            frame_count_exact=frame_count_exact, shots=shots, cuts=cuts, fps=fps,
            input_label=input_label, read=read, report=True)


# -- the report as node outputs ----------------------------------------------------------------


def report_json(setup: "FootageSetup") -> str:
    """The report exactly as ``colorize --report`` writes its JSON file."""
    return setup.report.json_text() if setup.report is not None else ""


def report_plot_rgb(setup: "FootageSetup") -> np.ndarray:
    """The plot ``colorize --report`` writes beside the JSON, as uint8 RGB.

    Without matplotlib (the ``plot`` extra) a white placeholder of the same size is returned;
    the JSON output carries the numbers either way.
    """
    figure = setup.report.plot_figure() if setup.report is not None else None
    if figure is None:
        return np.full((400, 1200, 3), 255, np.uint8)
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.uint8).copy()


# -- Pick Keyframes and Keep Luminance -----------------------------------------------------------


@dataclass(frozen=True)
class PickedStills:
    """What *Pick Keyframes* outputs: one gray still per group, the frames each one serves
    (Colorize Keyframes' ``frames`` text), and the pick as ``keyframes.json`` describes it."""

    stills: list[np.ndarray]
    frames_text: str
    info: dict


def _suggestions(report_text: str | None) -> list:
    """The low-confidence keyframes of an earlier run's report (a Colorize node's report output)."""
    import json

    from colorize.footage.report import ConfidenceReport
    from colorize.references import report_suggestions

    if not (report_text or "").strip():
        return []
    try:
        report = ConfidenceReport.from_json(json.loads(report_text))
    except (ValueError, KeyError, TypeError) as error:
        raise NodeInputError(f"report: not a colorize confidence report ({error}); connect the "
                             "report output of Colorize Video or Colorize Frames") from None
    return report_suggestions(report)


def pick_stills(frames, *, frame_count: int | None, fps: "float | Fraction | None", shots: str,
                group_shots: bool = True, group_threshold: float | None = None,
                report_text: str | None = None, input_label: str | None = None,
                frame_size: tuple[int, int] | None = None) -> PickedStills:
    """``colorize keyframes``' choice (:func:`colorize.references.pick_keyframes`) over
    ``frames`` ((index, RGB) in decode order): one still per group of alike shots."""
    from dataclasses import asdict, replace

    from colorize.references import PickConfig, pick_keyframes
    from colorize.references.store import keyframes_json

    config = PickConfig(group_shots=bool(group_shots))
    if group_threshold is not None:
        config = replace(config, group_threshold=float(group_threshold))
    mode, cuts = parse_shots(shots)
    if mode == SHOTS_AUTO:
        from colorize.footage.shots import CutDetector

        source = CutDetector(fps=fps or 25)
    elif cuts is not None:
        from colorize.footage.shots import check_cuts

        source = check_cuts(cuts, frame_count)
    else:
        source = None
    pick = pick_keyframes(frames, source, config, suggestions=_suggestions(report_text),
                          frame_count=frame_count)
    by_group = {still.group: still for still in pick.stills}
    served: dict[int, list[int]] = {}
    for keyframe in pick.keyframes:
        served.setdefault(keyframe.group, []).append(keyframe.serves)
    stills = sorted(pick.stills, key=lambda s: s.serves)
    size = frame_size or (stills[0].rgb.shape[1], stills[0].rgb.shape[0])
    info = keyframes_json(pick, by_group, input_label=input_label or "", frame_size=size,
                          fps=float(fps) if fps else None, shots=shots, report=None,
                          settings=asdict(config))
    text = ", ".join("+".join(map(str, sorted(served[still.group]))) for still in stills)
    return PickedStills([still.gray() for still in stills], text, info)


def keep_luminance_batch(colour: "torch.Tensor", gray: "torch.Tensor") -> list[np.ndarray]:
    """Each generated colour image on its gray still's luminance (the CLI's ``--generate``
    merge, :func:`colorize.color.keep_luminance`), at the still's size. A batch of one on
    either side pairs with every image of the other."""
    from colorize.color import keep_luminance

    image_io.check_batch(colour, "the colour images")
    image_io.check_batch(gray, "the gray stills")
    count_colour, count_gray = int(colour.shape[0]), int(gray.shape[0])
    if count_colour != count_gray and 1 not in (count_colour, count_gray):
        raise NodeInputError(f"{count_colour} colour image(s) but {count_gray} gray still(s); give "
                             "one colour image per still, in the same order")
    count = max(count_colour, count_gray)
    return [keep_luminance(image_io.to_rgb(colour[min(i, count_colour - 1)]),
                           image_io.to_rgb(gray[min(i, count_gray - 1)])) for i in range(count)]
