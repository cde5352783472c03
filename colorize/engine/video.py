"""One video's sequential part: shots, references and the propagator, frame by frame.

:class:`VideoRun` takes padded network images with their key features (computed ahead, in
chunks, by the colorizer) and returns each frame's ab at the processing size. It decides per
frame whether a shot starts (memory starts again from the reference that applies) or a keyframe
reference arrives (encoded once, added to permanent memory), and it saves and restores the
whole state (:class:`~colorize.engine.state.VideoState`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from colorize.engine.config import MemorySettings
from colorize.engine.guide import FrameRecord, VideoGuide
from colorize.engine.state import STATE_VERSION, VideoState
from colorize.model import ColorMNet, KeyFeatures
from colorize.propagation import EncodedReference, Padding


class VideoRun:
    """The per-video state between frames. ``prepare(rgb)`` turns an RGB reference at frame
    size into the padded ``(image (1,3,Hp,Wp), ab (1,2,Hp,Wp))`` pair the network takes."""

    def __init__(self, network: ColorMNet, settings: MemorySettings, padding: Padding,
                 processing_size: tuple[int, int], reference_is_first_frame: bool,
                 main_reference: tuple[torch.Tensor, torch.Tensor], guide: VideoGuide,
                 prepare: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
                 frame_size: tuple[int, int]) -> None:
        self.network = network
        self.settings = settings
        self.padding = padding
        self.processing_size = processing_size
        self.reference_is_first_frame = reference_is_first_frame
        self.main_reference = main_reference
        self.guide = guide
        self.prepare = prepare
        self.main_size = frame_size   # (H, W) every reference must have
        self.propagator = self._new_propagator()
        self.next_frame = 0
        self.shot = 0
        self.reference_in_use = 0
        # Encoded references by frame (0: the main one), each encoded once when first needed.
        self.encoded: dict[int, EncodedReference] = {}

    def _new_propagator(self):
        # Looked up at call time so that instrumentation (benchmarks) can wrap the class.
        from colorize import propagation

        return propagation.VideoPropagator(self.network, self.settings.memory_config(),
                                           self.settings.schedule_config())

    # -- frames --------------------------------------------------------------------------------

    def frame(self, image: torch.Tensor, features: KeyFeatures,
              is_last: bool) -> tuple[torch.Tensor, FrameRecord | None]:
        """Predict the next frame: ab ``(1, 2, Hp, Wp)``; the record only when asked for."""
        t = self.next_frame
        propagator = self.propagator
        read = True
        if t == 0 and self.reference_is_first_frame:
            ab = propagator.start_with_reference_frame(image, features, self.main_reference[1],
                                                       is_last)
            if propagator.first_reference is not None:
                self.encoded[0] = propagator.first_reference
            read = False
        elif t == 0:
            ab = propagator.start_with_encoded(image, features, self._reference(0), is_last)
        elif self.guide.is_cut is not None and self.guide.is_cut(t):
            self.shot += 1
            self.reference_in_use = max((f for f in self.guide.keyframes if f <= t), default=0)
            reference = self._reference(self.reference_in_use)
            self.propagator = propagator = self._new_propagator()
            ab = propagator.start_with_encoded(image, features, reference, is_last)
        elif t in self.guide.keyframes:
            self.reference_in_use = t
            ab = propagator.step(image, features, is_last, reference=self._reference(t))
        else:
            ab = propagator.step(image, features, is_last)
        self.next_frame = t + 1
        if self.guide.on_frame is None:
            return ab, None
        # The reference frame itself (reference-frame mode) matches memory exactly.
        score = float(propagator.memory.last_match) if read else 1.0
        return ab, FrameRecord(index=t, score=score, reference=self.reference_in_use, shot=self.shot)

    def _reference(self, frame: int) -> EncodedReference:
        """The encoded reference of ``frame`` (0: the main one), encoding it on first use."""
        if frame not in self.encoded:
            if frame == 0:
                image, ab = self.main_reference
            else:
                rgb = self.guide.keyframes[frame]
                if rgb.shape[:2] != self.main_size:
                    raise ValueError(f"reference for frame {frame} is {rgb.shape[:2]}, frames "
                                     f"are {self.main_size}")
                image, ab = self.prepare(rgb)
            features = self.network.encode_key(image)
            self.encoded[frame] = self.propagator.encode_reference(image, features, ab)
        return self.encoded[frame]

    # -- saving and restoring ------------------------------------------------------------------

    def snapshot(self) -> VideoState:
        """The state after the last frame computed (copies; the run may go on)."""
        tensors = self.propagator.state_tensors("propagator.")
        for frame, reference in self.encoded.items():
            tensors.update(reference.tensors(f"references.{frame}."))
        meta = {
            "version": STATE_VERSION,
            "next_frame": self.next_frame,
            "shot": self.shot,
            "reference_in_use": self.reference_in_use,
            "encoded_references": sorted(self.encoded),
            "processing_size": list(self.processing_size),
            "reference_is_first_frame": self.reference_is_first_frame,
            "propagator": self.propagator.state_meta(),
            "tensor_names": sorted(tensors),
        }
        return VideoState(tensors, meta)

    def restore(self, state: VideoState, device) -> None:
        """Continue from ``state`` (taken from a run with the same settings and sizes)."""
        meta = state.meta
        if tuple(meta["processing_size"]) != tuple(self.processing_size):
            raise ValueError(f"saved state is for processing size {meta['processing_size']}, "
                             f"this run uses {list(self.processing_size)}")
        if bool(meta["reference_is_first_frame"]) != self.reference_is_first_frame:
            raise ValueError("saved state differs in --ref-is-first-frame")
        tensors = {name: tensor.to(device) for name, tensor in state.tensors.items()}
        self.propagator = self._new_propagator()
        self.propagator.load_state(tensors, meta["propagator"], "propagator.")
        self.encoded = {int(frame): EncodedReference.from_tensors(tensors, f"references.{frame}.")
                        for frame in meta["encoded_references"]}
        self.next_frame = int(meta["next_frame"])
        self.shot = int(meta["shot"])
        self.reference_in_use = int(meta["reference_in_use"])
