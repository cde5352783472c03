"""The two runs the nodes do, free of ComfyUI: an IMAGE batch, and a video file to a video file.

ComfyUI's services come in as two callables: ``on_frame(done, total)`` (its progress bar) and
``check_interrupt()`` (raises when the user pressed Interrupt). Both are called in the thread
that drives the engine after every finished frame, so an interrupt stops the run within one frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from colorize.comfyui import images as image_io
from colorize.comfyui.errors import NodeInputError
from colorize.errors import CorruptInputError, NoVideoStreamError
from colorize.progress import ProgressReporter
from colorize.reference import resize_to

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from colorize.engine import FrameColorizer

logger = logging.getLogger(__name__)

OnFrame = Callable[[int, int], None]
CheckInterrupt = Callable[[], None]


def colorize_batch(
    colorizer: "FrameColorizer",
    images: "torch.Tensor",
    reference: "torch.Tensor",
    on_frame: OnFrame,
    check_interrupt: CheckInterrupt,
) -> "torch.Tensor":
    """IMAGE batch ``(B, H, W, C)`` -> colorized IMAGE batch ``(B, H, W, 3)``, same count and size.

    Frames are converted one at a time as the engine asks for them and every result is written
    straight into the output tensor, so the only full-size tensors are the input and the output.
    """
    import torch

    image_io.check_batch(images, "the frames")
    count, height, width = (int(n) for n in images.shape[:3])
    reference_rgb = resize_to(image_io.reference_rgb(reference), (width, height))
    output = torch.empty((count, height, width, 3), dtype=torch.float32)

    def frames() -> Iterator[np.ndarray]:
        for index in range(count):
            yield image_io.to_rgb(images[index])

    check_interrupt()
    on_frame(0, count)
    done = 0
    for rgb in colorizer.colorize(frames(), reference_rgb):
        if done >= count:
            raise RuntimeError("the colorizer returned more frames than it was given")
        image_io.write_rgb(rgb, output[done])
        done += 1
        on_frame(done, count)
        check_interrupt()
    if done != count:
        raise RuntimeError(f"the colorizer returned {done} of {count} frames")
    return output


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
    reference: "torch.Tensor",
    output_path: Path,
    on_frame: OnFrame,
    check_interrupt: CheckInterrupt,
    crf: int | None = None,
) -> int:
    """Stream ``source_path`` through the colorizer into ``output_path`` (mp4, audio copied).

    The same decode -> colorize -> encode pipeline as the ``colorize`` command: frames are
    decoded, colorized and encoded one by one (memory does not grow with the length), timing,
    rotation and audio/subtitle streams are kept. Returns the number of frames written.
    """
    from colorize.pipeline import run_colorization
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    rgb = image_io.reference_rgb(reference)
    try:
        source = open_source(source_path)
    except (NoVideoStreamError, CorruptInputError) as error:
        raise NodeInputError(f"the VIDEO has no frames to colorize ({error})") from None
    with source:
        info = source.info
        if info.kind != "video":
            raise NodeInputError(f"the VIDEO input is not a video file: {source_path}")
        reference_rgb = resize_to(rgb, info.upright_size)
        target = resolve_output(str(output_path), info, overwrite=True)
        progress = _NodeProgress(info.frame_count, on_frame, check_interrupt)
        check_interrupt()
        on_frame(0, info.frame_count or 1)
        sink = open_sink(target, source, crf=crf)
        try:
            written = run_colorization(source, reference_rgb, colorizer, sink, progress)
            if written == 0:
                raise NodeInputError("the VIDEO has no frames to colorize")
            sink.commit()
        except BaseException:
            sink.abort()
            raise
    return written
