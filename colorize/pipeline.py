"""One run: decoded frames -> colorizer -> sink, checking the colorizer keeps count and order.

No torch and no file names here: the caller opens the source and sink and builds the
colorizer. Frames reach the colorizer upright (display rotation applied) so that they match
the upright reference; a video sink gets them back in stored orientation, since it writes the
rotation as metadata, while image sinks keep them upright (PNG has no rotation tag).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Iterator

import numpy as np


from colorize.footage.parts import VideoSegmentParts
from colorize.progress import ProgressReporter
from colorize.video.sink import Sink, VideoFileSink
from colorize.video.source import FrameMeta, Source

if TYPE_CHECKING:  # pragma: no cover - the engine may pull in torch
    from colorize.engine import FrameColorizer
    from colorize.footage.resume import ResumeSession
    from colorize.footage.setup import FootageSetup


def quarter_turns(rotation: int) -> int:
    """Display rotation in degrees (counter-clockwise) as a count of 90-degree turns."""
    return int(round(rotation / 90)) % 4


def to_upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Stored frame -> picture as displayed."""
    turns = quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def to_stored(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Inverse of :func:`to_upright`."""
    turns = quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(rgb, k=-turns)) if turns else rgb


def run_colorization(
    source: Source,
    reference: np.ndarray,
    colorizer: "FrameColorizer",
    sink: Sink,
    progress: ProgressReporter,
    resume: "ResumeSession | None" = None,
    footage: "FootageSetup | None" = None,
) -> int:
    """Colorize every frame of ``source`` into ``sink``; return the number of frames written.

    With ``resume`` the sink is the checkpoint's (``resume.parts``): decoding starts at the
    keyframe before ``resume.start_frame`` (:meth:`~colorize.video.source.Source.frames_from`),
    frames before it are not colorized (their output is already stored), the engine and the cut
    detector continue from the saved state, and a checkpoint is saved at the frames the session
    picks. The count returned includes the frames done before the resume.

    With ``footage`` (several references, shots, a report) every decoded frame is shown to it
    (the cut detector of ``--shots auto`` works on these frames, no second pass) and the
    colorizer gets its guide; a plain footage set-up changes nothing.

    Raises ``RuntimeError`` if the colorizer breaks its contract (count, shape or dtype):
    that is a bug, not a user error. The caller commits or aborts the sink.
    """
    rotation = source.info.rotation
    rotate_back = isinstance(sink, VideoFileSink) or (
        resume is not None and isinstance(resume.parts, VideoSegmentParts)
    )
    pending: deque[FrameMeta] = deque()
    upright_shape: list[tuple[int, ...]] = []
    skip = resume.start_frame if resume is not None else 0
    if resume is not None and footage is not None and footage.report is not None:
        resume.track_report(footage.report)
    if skip:
        progress.resume_from(skip)

    # A resumed run starts decoding at the keyframe before its position (the checkpoint says
    # where), unless the cut detector must see the frames before it again (its state was not
    # in the checkpoint).
    replay = resume is not None and not resume.continue_footage(footage)
    decoded = source.frames() if replay or not skip else source.frames_from(
        skip, resume.seek_anchor if resume is not None else None)

    def feed() -> Iterator[np.ndarray]:
        for frame in decoded:
            if frame.meta.index < skip:
                if not upright_shape:
                    upright_shape.append(to_upright(frame.rgb, rotation).shape)
                if footage is not None:
                    footage.observe(frame.meta.index, to_upright(frame.rgb, rotation))
                if resume is not None:
                    resume.observe(frame.meta)
                continue
            pending.append(frame.meta)
            upright = to_upright(frame.rgb, rotation)
            if footage is not None:
                footage.observe(frame.meta.index, upright)
            if resume is not None:
                resume.observe(frame.meta)
            if not upright_shape:
                upright_shape.append(upright.shape)
            yield upright

    frames = feed()
    written = 0
    guide = footage.guide() if footage is not None and not footage.is_plain else None
    if resume is None:
        results = (colorizer.colorize(frames, reference) if guide is None
                   else colorizer.colorize(frames, reference, guide=guide))
    elif resume.complete:
        results = iter(())  # every frame is stored; only the final assembly is left
    else:
        results = colorizer.colorize(frames, reference, guide=resume.attach(guide, colorizer))
    for result in results:
        if not pending:
            raise RuntimeError("the colorizer yielded more frames than it was given")
        meta = pending.popleft()
        _check_result(result, upright_shape[0], meta.index)
        sink.write(to_stored(result, rotation) if rotate_back else result, meta)
        written += 1
        progress.advance()
        if resume is not None:
            resume.frame_written(meta.index)
    if resume is not None and resume.complete:
        if footage is not None:
            footage.finish(skip)
        return skip
    leftover = len(pending) + sum(1 for _ in frames)
    if leftover:
        raise RuntimeError(
            f"the colorizer yielded {written} frames but the input has {written + leftover}"
        )
    if footage is not None:
        footage.finish(skip + written)
    progress.finish()
    return skip + written


def _check_result(result: np.ndarray, shape: tuple[int, ...], index: int) -> None:
    if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != shape:
        got = (
            f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result)
        )
        raise RuntimeError(
            f"the colorizer returned {got} for frame {index}, expected uint8 {shape}"
        )
