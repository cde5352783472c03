"""The two runs the nodes do, free of ComfyUI: an IMAGE batch, and a video file to a video file,
each with the main reference, keyframes and shots of :class:`~colorize.comfyui.footage.FootageInputs`.

ComfyUI's services come in as two callables: ``on_frame(done, total)`` (its progress bar) and
``check_interrupt()`` (raises when the user pressed Interrupt). Both are called in the thread
that drives the engine after every finished frame, so an interrupt stops the run within one frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from colorize.comfyui import images as image_io
from colorize.comfyui.errors import NodeInputError
from colorize.comfyui.footage import FootageInputs, PickedStills, pick_stills
from colorize.errors import CorruptInputError, NoVideoStreamError
from colorize.progress import ProgressReporter

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from colorize.engine import FrameColorizer
    from colorize.footage.setup import FootageSetup

logger = logging.getLogger(__name__)

#: The frame rate ``colorize --fps`` assumes when the input does not say (labels the report).
_DEFAULT_FPS = 25.0

OnFrame = Callable[[int, int], None]
CheckInterrupt = Callable[[], None]


def colorize_batch(
    colorizer: "FrameColorizer",
    images: "torch.Tensor",
    inputs: FootageInputs,
    on_frame: OnFrame,
    check_interrupt: CheckInterrupt,
) -> tuple["torch.Tensor", "FootageSetup"]:
    """IMAGE batch ``(B, H, W, C)`` -> colorized IMAGE batch ``(B, H, W, 3)``, same count and size,
    and the run's footage set-up (its report filled in).

    Frames are converted one at a time as the engine asks for them and every result is written
    straight into the output tensor, so the only full-size tensors are the input and the output.
    References by frame, shots and the report work as in :func:`colorize.pipeline.run_colorization`.
    """
    import torch

    image_io.check_batch(images, "the frames")
    count, height, width = (int(n) for n in images.shape[:3])
    footage = inputs.prepare(frame_size=(width, height), frame_count=count, frame_count_exact=True)
    output = torch.empty((count, height, width, 3), dtype=torch.float32)

    def frames() -> Iterator[np.ndarray]:
        for index in range(count):
            rgb = image_io.to_rgb(images[index])
            footage.observe(index, rgb)
            yield rgb

    check_interrupt()
    on_frame(0, count)
    done = 0
    results = (colorizer.colorize(frames(), footage.main_reference) if footage.is_plain
               else colorizer.colorize(frames(), footage.main_reference, guide=footage.guide()))
    for rgb in results:
        if done >= count:
            raise RuntimeError("the colorizer returned more frames than it was given")
        image_io.write_rgb(rgb, output[done])
        done += 1
        on_frame(done, count)
        check_interrupt()
    if done != count:
        raise RuntimeError(f"the colorizer returned {done} of {count} frames")
    footage.finish(done)
    return output, footage


class _NodeProgress(ProgressReporter):
    """The pipeline's progress counter, forwarded to ComfyUI's bar; checks for interrupts."""

    def __init__(self, total: int | None, on_frame: OnFrame, check_interrupt: CheckInterrupt) -> None:
        super().__init__(total=total, enabled=False)
        self._on_frame = on_frame
        self._check_interrupt = check_interrupt

    def advance(self, frames: int = 1) -> None:
        super().advance(frames)
        total = self.total if self.total and self.total >= self.done else self.done
        self._on_frame(self.done, total)
        self._check_interrupt()


def colorize_video_file(
    colorizer: "FrameColorizer",
    source_path: Path,
    inputs: FootageInputs,
    output_path: Path,
    on_frame: OnFrame,
    check_interrupt: CheckInterrupt,
    crf: int | None = None,
) -> tuple[int, "FootageSetup"]:
    """Stream ``source_path`` through the colorizer into ``output_path`` (mp4, audio copied).

    The same decode -> colorize -> encode pipeline as the ``colorize`` command: frames are
    decoded, colorized and encoded one by one (memory does not grow with the length), timing,
    rotation and audio/subtitle streams are kept, references by frame and shots are honoured.
    Returns the number of frames written and the footage set-up (its report filled in).
    """
    from colorize.pipeline import run_colorization
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    if inputs.reference is not None:
        image_io.reference_rgb(inputs.reference)  # a bad reference is named before the video
    try:
        source = open_source(source_path)
    except (NoVideoStreamError, CorruptInputError) as error:
        raise NodeInputError(f"the VIDEO has no frames to colorize ({error})") from None
    with source:
        info = source.info
        if info.kind != "video":
            raise NodeInputError(f"the VIDEO input is not a video file: {source_path}")
        footage = inputs.prepare(frame_size=info.upright_size, frame_count=info.frame_count,
                                 frame_count_exact=not info.frame_count_is_estimate,
                                 fps=info.average_rate or _DEFAULT_FPS, input_label=str(info.path))
        target = resolve_output(str(output_path), info, overwrite=True)
        progress = _NodeProgress(info.frame_count, on_frame, check_interrupt)
        check_interrupt()
        on_frame(0, info.frame_count or 1)
        sink = open_sink(target, source, crf=crf)
        try:
            written = run_colorization(source, footage.main_reference, colorizer, sink, progress,
                                       footage=footage)
            if written == 0:
                raise NodeInputError("the VIDEO has no frames to colorize")
            sink.commit()
        except BaseException:
            sink.abort()
            raise
    return written, footage


def pick_from_video(source_path: Path, on_frame: OnFrame, check_interrupt: CheckInterrupt,
                    **choice: Any) -> PickedStills:
    """*Pick Keyframes* over a video file: frames decoded once, upright, as ``colorize keyframes``
    reads them; ``choice`` as :func:`colorize.comfyui.footage.pick_stills` takes it."""
    from colorize.pipeline import to_upright
    from colorize.video.source import open_source

    try:
        source = open_source(source_path)
    except (NoVideoStreamError, CorruptInputError) as error:
        raise NodeInputError(f"the VIDEO has no frames to pick from ({error})") from None
    with source:
        info = source.info
        exact = None if info.frame_count_is_estimate else info.frame_count
        progress = _NodeProgress(info.frame_count, on_frame, check_interrupt)

        def frames() -> Iterator[tuple[int, np.ndarray]]:
            for frame in source.frames():
                yield frame.meta.index, to_upright(frame.rgb, info.rotation)
                progress.advance()

        return pick_stills(frames(), frame_count=exact, fps=info.average_rate or _DEFAULT_FPS,
                           input_label=str(info.path), frame_size=info.upright_size, **choice)


def pick_from_batch(images: "torch.Tensor", on_frame: OnFrame, check_interrupt: CheckInterrupt,
                    **choice: Any) -> PickedStills:
    """*Pick Keyframes* over an IMAGE batch (the frames of a clip, in order)."""
    image_io.check_batch(images, "the frames")
    count = int(images.shape[0])

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        for index in range(count):
            yield index, image_io.to_rgb(images[index])
            on_frame(index + 1, count)
            check_interrupt()

    return pick_stills(frames(), frame_count=count, fps=None, **choice)
