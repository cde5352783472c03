"""The per-video driver: decoded RGB frames and a reference in, colorized frames out.

It never opens files. Work is split by what depends on earlier outputs: key encoding (ResNet50,
DINOv2, fuse blocks, key heads) and the colour conversion of a frame depend on nothing else, so
they run on chunks of frames at once; the memory read, decoding and value encoding are
sequential (:mod:`colorize.propagation`). Decoding of the next frames overlaps with this work (a
prefetch thread) and so does the caller's encoding (on accelerators the propagation runs in a
worker thread and hands finished frames over through a short queue).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np

from colorize.engine.config import EngineConfig
from colorize.engine.guide import VideoGuide
from colorize.engine.planning import MIN_PROCESSING_SIDE, RunPlan, padded, plan_for, scaled, size_text
from colorize.engine.precision import autocast
from colorize.engine.state import VideoState
from colorize.engine.streams import Background, Lookahead
from colorize.errors import OutOfDeviceMemoryError

if TYPE_CHECKING:  # torch-free at import time
    import torch

    from colorize.engine.video import VideoRun

logger = logging.getLogger(__name__)


class ColorMNetColorizer:
    """The :class:`FrameColorizer` backed by our ColorMNet."""

    def __init__(self, network, device, precision: str, config: EngineConfig) -> None:
        self.network = network
        self.device = device
        self.precision = precision
        self.config = config
        self.last_plan: RunPlan | None = None
        self.events: list[str] = []      # what the engine had to change during the last run
        self.on_event: Callable[[str], None] = lambda message: logger.warning("%s", message)
        self._video: "VideoRun | None" = None

    # -- public --------------------------------------------------------------------------------

    def plan(self, frame_size: tuple[int, int]) -> RunPlan:
        return plan_for(self.config, frame_size, self.device)

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray,
                 guide: VideoGuide | None = None) -> Iterator[np.ndarray]:
        """RGB frames in, RGB frames out; decode, compute and the caller's encode overlap.

        On an accelerator the model runs in a worker thread so that the caller's encoding of
        frame t overlaps the GPU work of frame t+1. On CPU the model already uses every core,
        so it runs in the calling thread (a second thread only added scheduling overhead).
        ``guide``: keyframe references, shot cuts, a per-frame callback, a state to resume from.
        """
        from colorize.color import assemble_rgb

        def rgb_frames() -> Iterator[np.ndarray]:
            for luminance, ab in self.predict(frames, reference, guide):
                rgb = assemble_rgb(luminance, ab).permute(1, 2, 0)
                yield rgb.cpu().numpy()

        if self.device.type == "cpu":
            yield from rgb_frames()
        else:
            yield from Background(rgb_frames(), depth=2, name="colorize-compute")

    def predict(self, frames: Iterable[np.ndarray], reference: np.ndarray,
                guide: VideoGuide | None = None) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        """Per frame: its normalised L ``(1, H, W)`` and the predicted ab ``(2, H, W)``
        (tanh scale, full frame resolution), both float32 on the device."""
        import torch

        self.events = []
        decoded = Background(frames, depth=4, name="colorize-decode")
        iterator = iter(decoded)
        with torch.inference_mode(), autocast(self.device, self.precision):
            try:
                yield from self._propagate(iterator, reference, guide or VideoGuide())
            finally:
                decoded.close()

    def snapshot(self) -> VideoState:
        """The engine state after the frame just computed (see :class:`VideoGuide`)."""
        if self._video is None:
            raise RuntimeError("no video is running")
        return self._video.snapshot()

    # -- internals -----------------------------------------------------------------------------

    def _to_lab(self, rgb: np.ndarray) -> "torch.Tensor":
        """uint8 ``(..., H, W, 3)`` -> normalised LAB ``(..., 3, H, W)`` float32 on the device."""
        import torch

        from colorize.color import rgb_to_normalized_lab

        # Decoded frames can be read-only views; torch wants writable memory.
        tensor = torch.from_numpy(np.require(rgb, requirements=("C", "W"))).to(self.device)
        return rgb_to_normalized_lab(tensor.movedim(-1, -3))

    def _network_input(self, lab: "torch.Tensor", plan: RunPlan, padding) -> "torch.Tensor":
        """Normalised LAB ``(B, C, H, W)`` -> padded network tensor at the processing size."""
        import torch.nn.functional as F

        if plan.processing_size != plan.frame_size:
            lab = F.interpolate(lab, size=plan.processing_size, mode="bilinear",
                                align_corners=False, antialias=True)
        return padding.apply(lab)

    def _propagate(self, frames: Iterator[np.ndarray], reference: np.ndarray, guide: VideoGuide):
        """Plan, then run the video; out of memory before the first frame is out restarts it
        at a lower processing size (afterwards the memory bank fixes the size)."""
        from colorize.devices import is_out_of_memory, release_cached_memory

        lookahead = Lookahead(frames)
        first = lookahead.peek()
        if first is None:
            return
        frame_size = (int(first.shape[0]), int(first.shape[1]))
        if reference.shape[:2] != frame_size:
            raise ValueError(f"reference is {reference.shape[:2]}, frames are {frame_size}")
        if any(frame < 1 for frame in guide.keyframes):
            raise ValueError("keyframe references start at frame 1 (frame 0's is the main one)")
        plan = self.plan(frame_size)
        if guide.start is not None:
            # A resumed video keeps the size its memory was built at.
            saved = tuple(guide.start.meta["processing_size"])
            plan = replace(plan, processing_size=saved, padded_size=padded(saved), reason="")
        if plan.reason:
            self._report(f"{plan.reason} (running at {size_text(plan.processing_size)})")
        while True:
            self.last_plan = plan
            for line in plan.describe():
                logger.debug("plan: %s", line)
            consumed: list[np.ndarray] = []
            started = False
            try:
                for item in self._run(lookahead, reference, plan, consumed, guide):
                    started = True
                    yield item
                return
            except Exception as error:
                if started or guide.start is not None or not (
                        isinstance(error, OutOfDeviceMemoryError) or is_out_of_memory(error)):
                    raise
                if max(plan.processing_size) <= MIN_PROCESSING_SIDE:
                    raise OutOfDeviceMemoryError(
                        "out of memory even at the smallest processing size; free device "
                        "memory or use --device cpu") from None
            release_cached_memory(self.device)
            lookahead.unread(consumed)
            smaller = scaled(plan.processing_size, int(max(plan.processing_size) * 0.75))
            self._report(f"out of memory at {size_text(plan.processing_size)} with one frame: "
                         f"processing at {size_text(smaller)} instead, colour upsampled to the "
                         "frame")
            plan = replace(plan, processing_size=smaller, padded_size=padded(smaller),
                           chunk_size=1, reason="processing size lowered after running out of memory")

    def _run(self, lookahead: Lookahead, reference: np.ndarray, plan: RunPlan,
             consumed: list[np.ndarray], guide: VideoGuide):
        """One pass over the video with ``plan``; frames taken are appended to ``consumed``."""
        import torch.nn.functional as F

        from colorize.engine.video import VideoRun
        from colorize.propagation import Padding

        chunk_size = plan.chunk_size
        padding = Padding.for_size(*plan.processing_size, self.network.config.pad_multiple)

        def prepare(rgb: np.ndarray):
            network_in = self._network_input(self._to_lab(rgb)[None], plan, padding)
            return network_in[:, :1].expand(-1, 3, -1, -1), network_in[:, 1:]

        reference_lab = self._to_lab(reference)[None]
        reference_in = self._network_input(reference_lab, plan, padding)
        main_reference = (reference_in[:, :1].expand(-1, 3, -1, -1), reference_in[:, 1:])
        video = VideoRun(self.network, self.config.memory, padding, plan.processing_size,
                         self.config.reference_is_first_frame, main_reference, guide, prepare,
                         plan.frame_size)
        if guide.start is not None:
            video.restore(guide.start, self.device)
        self._video = video
        first = video.next_frame
        while True:
            chunk = lookahead.take(chunk_size)
            if not chunk:
                return
            if video.next_frame == first:
                consumed.extend(chunk)
            stack = np.stack(chunk)
            lab = self._to_lab(stack)
            luminance = lab[:, :1]
            images = self._network_input(luminance, plan, padding).expand(-1, 3, -1, -1)
            features, chunk_size = self._encode_keys(images, chunk_size)
            for offset in range(len(chunk)):
                is_last = lookahead.exhausted() and offset == len(chunk) - 1
                index = video.next_frame
                ab, record = video.frame(images[offset:offset + 1], features.frame(offset), is_last)
                ab = padding.remove(ab).float()
                if plan.processing_size != plan.frame_size:
                    ab = F.interpolate(ab, size=plan.frame_size, mode="bilinear",
                                       align_corners=False)
                if index == 0 and self.config.reference_is_first_frame:
                    # Frame 0 keeps the reference's own colours at full resolution.
                    ab = reference_lab[:, 1:]
                if record is not None:
                    guide.on_frame(record)
                yield luminance[offset], ab[0]
            del features, images, lab

    def _report(self, message: str) -> None:
        self.events.append(message)
        self.on_event(message)

    def _encode_keys(self, images, chunk_size: int):
        """Key-encode a chunk, halving the sub-batch on out-of-memory until one frame fits."""
        from colorize.devices import is_out_of_memory, release_cached_memory
        from colorize.model import KeyFeatures

        parts = []
        start = 0
        while start < images.shape[0]:
            size = min(chunk_size, images.shape[0] - start)
            try:
                parts.append(self.network.encode_key(images[start:start + size]))
                start += size
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                release_cached_memory(self.device)
                if size == 1:
                    raise OutOfDeviceMemoryError(
                        "out of memory encoding a single frame; rerun with a smaller --max-side "
                        "or on a device with more free memory") from None
                chunk_size = max(1, size // 2)
                self._report(f"out of memory with {size} frames per chunk: retrying with {chunk_size}")
        return (parts[0] if len(parts) == 1 else KeyFeatures.cat(parts)), chunk_size
