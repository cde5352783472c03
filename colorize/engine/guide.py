"""What a caller may add to a plain run (keyframe references, shot cuts, a per-frame callback,
a state to continue from) and what the engine reports for every frame. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from colorize.engine.state import VideoState


@dataclass(frozen=True)
class FrameRecord:
    """The engine's account of one frame, given to :attr:`VideoGuide.on_frame`."""

    index: int          # 0-based frame index in decode order
    score: float        # memory-match score in [0, 1] (see colorize.memory.MemoryBank.read)
    reference: int      # frame of the reference the frame's shot started from or last added
    shot: int           # 0-based shot index


@dataclass
class VideoGuide:
    """Optional inputs of one run, beyond the frames and the main reference.

    ``keyframes``: frame index (> 0) -> RGB reference at the (upright) frame size, each encoded
    once when its frame arrives and kept in permanent memory until the next cut.
    ``is_cut(t)``: whether frame ``t`` (> 0) starts a new shot; asked once per frame, after the
    frames up to ``t`` were taken from the caller's iterator (a detector fed by that iterator
    has seen frame ``t``). At a cut memory starts again from the latest reference at or before
    ``t`` (a keyframe, else the main reference).
    ``on_frame``: called with a :class:`FrameRecord` after each frame is computed and before it
    is handed out, in the thread that computes; :meth:`ColorMNetColorizer.snapshot` called from
    it describes the state after that frame.
    ``start``: a saved :class:`~colorize.engine.state.VideoState`; the frames given are then the
    ones after ``start.next_frame - 1``.
    """

    keyframes: Mapping[int, np.ndarray] = field(default_factory=dict)
    is_cut: Callable[[int], bool] | None = None
    on_frame: Callable[[FrameRecord], None] | None = None
    start: "VideoState | None" = None
