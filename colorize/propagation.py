"""Propagates the reference's colours through one video, frame by frame.

This is the per-video schedule of ColorMNet: which frames become memory frames, when the hidden
state is updated by the decoder or by the value encoder, and the two ways to start a video (the
reference *is* frame 0, or it is a separate exemplar), plus what long footage adds: references
encoded once and kept in permanent memory, and a state that can be saved and restored exactly.
It works on padded, normalised tensors and on key features computed beforehand (possibly many
frames at once); it never touches files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from colorize.memory import MemoryBank, MemoryConfig
from colorize.model import ColorMNet, KeyFeatures


@dataclass(frozen=True)
class ScheduleConfig:
    """When frames are memorised and when the hidden state gets a deep update."""

    mem_every: int = 5
    # Negative: deep updates happen exactly on memory frames (the official default).
    deep_update_every: int = -1

    def validate(self) -> None:
        if self.mem_every < 1:
            raise ValueError("mem_every must be at least 1")
        if self.deep_update_every == 0:
            raise ValueError("deep_update_every must be negative (follow memory frames) or >= 1")


@dataclass(frozen=True)
class EncodedReference:
    """A reference as memory holds it: encoded once (key encoder, then the value encoder with a
    zero hidden state and no deep update), so it can seed a new shot without running again."""

    key: torch.Tensor        # (1, CK, h, w)
    shrinkage: torch.Tensor  # (1, 1, h, w)
    selection: torch.Tensor  # (1, CK, h, w)
    value: torch.Tensor      # (1, 2, CV, h, w)

    FIELDS = ("key", "shrinkage", "selection", "value")

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}{name}": getattr(self, name).clone() for name in self.FIELDS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "EncodedReference":
        return cls(**{name: tensors[f"{prefix}{name}"].clone() for name in cls.FIELDS})


@dataclass(frozen=True)
class Padding:
    """Centred zero padding to a multiple; the odd pixel goes to the bottom / right."""

    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def for_size(cls, height: int, width: int, multiple: int) -> "Padding":
        pad_h = -height % multiple
        pad_w = -width % multiple
        return cls(pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.left, self.right, self.top, self.bottom))

    def remove(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return x[..., self.top:height - self.bottom, self.left:width - self.right]


class VideoPropagator:
    """State of one video: the memory bank, the last memory frame, counters.

    Call :meth:`start_with_reference_frame` or :meth:`start_with_exemplar` for frame 0, then
    :meth:`step` for every later frame, in order. Inputs are padded network images
    ``(1, 3, Hp, Wp)`` and their key features; outputs are ``(1, 2, Hp, Wp)`` tanh ab.
    """

    def __init__(self, network: ColorMNet, memory: MemoryConfig, schedule: ScheduleConfig) -> None:
        schedule.validate()
        self.network = network
        self.memory = MemoryBank(memory)
        self.schedule = schedule
        self.frame_index = -1
        self.last_memory_index = 0
        self.last_deep_update_index = -schedule.deep_update_every
        self.last_key: torch.Tensor | None = None
        self.last_value: torch.Tensor | None = None
        self.value_encodes = 0
        self.deep_updates = 0
        # The reference the shot started from (also the memorised frame 0 in reference-frame mode).
        self.first_reference: EncodedReference | None = None

    # -- frame 0 -------------------------------------------------------------------------------

    def start_with_reference_frame(self, image: torch.Tensor, features: KeyFeatures,
                                   reference_ab: torch.Tensor, is_last: bool) -> torch.Tensor:
        """Frame 0 whose colours are the reference's ab: memorised (permanently) with them,
        returned as is. The memorised entry is then :attr:`first_reference`."""
        self.frame_index = 0
        self.memory.hidden = self.network.empty_hidden(features.key)
        is_memory = not is_last
        if is_memory:
            is_deep = self._is_deep(is_memory, is_last)
            self._memorise(image, features, reference_ab, deep_update=is_deep, permanent=True)
            self.first_reference = EncodedReference(features.key, features.shrinkage,
                                                    features.selection, self.last_value)
        return reference_ab

    def encode_reference(self, exemplar_image: torch.Tensor, exemplar_features: KeyFeatures,
                         exemplar_ab: torch.Tensor) -> EncodedReference:
        """Value-encode a separate exemplar (zero hidden state, no deep update); the hidden state
        only enters a deep update, so the result does not depend on where the video is."""
        hidden = self.network.empty_hidden(exemplar_features.key)
        value, _ = self.network.encode_value(exemplar_image, exemplar_features.f16, hidden,
                                             exemplar_ab, deep_update=False)
        self.value_encodes += 1
        return EncodedReference(exemplar_features.key, exemplar_features.shrinkage,
                                exemplar_features.selection, value)

    def start_with_exemplar(self, image: torch.Tensor, features: KeyFeatures,
                            exemplar_image: torch.Tensor, exemplar_features: KeyFeatures,
                            exemplar_ab: torch.Tensor, is_last: bool) -> torch.Tensor:
        """Frame 0 predicted from a separate exemplar, which stays in memory for the whole video."""
        reference = self.encode_reference(exemplar_image, exemplar_features, exemplar_ab)
        return self.start_with_encoded(image, features, reference, is_last)

    def start_with_encoded(self, image: torch.Tensor, features: KeyFeatures,
                           reference: EncodedReference, is_last: bool) -> torch.Tensor:
        """Frame 0 (of a video or a shot) predicted from an already encoded exemplar, which
        stays in permanent memory for the whole shot."""
        self.frame_index = 0
        self.memory.hidden = self.network.empty_hidden(features.key)
        is_memory = not is_last
        # Flags come from the general rule first; the exemplar then forces "no deep update".
        is_normal = self._is_normal(self._is_deep(is_memory, is_last), is_last)
        self.memory.add(reference.key, reference.shrinkage, reference.value, reference.selection,
                        permanent=True)
        self.first_reference = reference
        self.last_key, self.last_value = reference.key, reference.value
        # Frame 0 reads the exemplar from memory only: no short-term attention yet.
        readout = self.memory.read(features.key, features.selection)
        ab = self._decode(features, readout, is_normal)
        if is_memory:
            self._memorise(image, features, ab, deep_update=False)
        return ab

    # -- later frames --------------------------------------------------------------------------

    def step(self, image: torch.Tensor, features: KeyFeatures, is_last: bool,
             reference: EncodedReference | None = None) -> torch.Tensor:
        """Predict one frame after frame 0. ``reference``: a keyframe reference for this frame,
        added to permanent memory before the frame reads it (and the frame is memorised, as the
        official schedule does for a frame that comes with an exemplar)."""
        if self.frame_index < 0:
            raise RuntimeError("start the video with a reference before stepping")
        self.frame_index += 1
        if reference is not None:
            self.memory.add(reference.key, reference.shrinkage, reference.value,
                            reference.selection, permanent=True)
        is_memory = self._is_memory_frame(self.frame_index, is_last) or (
            reference is not None and not is_last)
        is_deep = self._is_deep(is_memory, is_last)
        is_normal = self._is_normal(is_deep, is_last)
        readout = self.memory.read(features.key, features.selection)
        readout = readout + self.network.short_term_attention(features.key, self.last_key,
                                                              self.last_value)
        ab = self._decode(features, readout, is_normal)
        if is_memory:
            self._memorise(image, features, ab, deep_update=is_deep)
        return ab

    def needs_shrinkage(self, is_last: bool) -> bool:
        """Whether the next :meth:`step` will memorise its frame (and so needs its shrinkage)."""
        return self._is_memory_frame(self.frame_index + 1, is_last)

    # -- helpers -------------------------------------------------------------------------------

    def _is_memory_frame(self, t: int, is_last: bool) -> bool:
        return (t - self.last_memory_index >= self.schedule.mem_every) and not is_last

    def _is_deep(self, is_memory: bool, is_last: bool) -> bool:
        every = self.schedule.deep_update_every
        if every < 0:
            return is_memory and not is_last
        return (self.frame_index - self.last_deep_update_index >= every) and not is_last

    def _is_normal(self, is_deep: bool, is_last: bool) -> bool:
        synchronised = self.schedule.deep_update_every < 0
        return (not synchronised or not is_deep) and not is_last

    def _decode(self, features: KeyFeatures, readout: torch.Tensor, is_normal: bool) -> torch.Tensor:
        logits, hidden = self.network.decode(features, readout, self.memory.hidden, is_normal)
        if hidden is not None:
            self.memory.hidden = hidden
        if logits.dtype != torch.float32:
            _check_half_range(logits, self.frame_index)
        # tanh in float32 whatever precision the decoder ran in.
        return torch.tanh(logits.float())

    def _memorise(self, image: torch.Tensor, features: KeyFeatures, ab: torch.Tensor,
                  deep_update: bool, permanent: bool = False) -> None:
        value, hidden = self.network.encode_value(image, features.f16, self.memory.hidden, ab,
                                                  deep_update=deep_update)
        self.value_encodes += 1
        self.memory.add(features.key, features.shrinkage, value, features.selection,
                        permanent=permanent)
        self.last_memory_index = self.frame_index
        self.last_key, self.last_value = features.key, value
        if deep_update:
            self.memory.hidden = hidden
            self.last_deep_update_index = self.frame_index
            self.deep_updates += 1

    # -- saving and restoring ------------------------------------------------------------------

    _COUNTERS = ("frame_index", "last_memory_index", "last_deep_update_index", "value_encodes",
                 "deep_updates")

    def state_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every tensor the next frames depend on: memory bank, hidden state, the last memory
        frame's key and value (the short-term attention reads them) and the shot's reference."""
        tensors = self.memory.state_tensors(f"{prefix}memory.")
        if self.last_key is not None:
            tensors[f"{prefix}last_key"] = self.last_key.clone()
            tensors[f"{prefix}last_value"] = self.last_value.clone()
        if self.first_reference is not None:
            tensors.update(self.first_reference.tensors(f"{prefix}first_reference."))
        return tensors

    def state_meta(self) -> dict:
        """The JSON-able rest: counters and the memory bank's bookkeeping."""
        meta = {name: getattr(self, name) for name in self._COUNTERS}
        meta["memory"] = self.memory.state_meta()
        return meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict, prefix: str = "") -> None:
        """Continue exactly where the saved propagator stopped (same network and configs)."""
        self.memory.load_state(tensors, meta["memory"], f"{prefix}memory.")
        for name in self._COUNTERS:
            setattr(self, name, int(meta[name]))
        key = tensors.get(f"{prefix}last_key")
        self.last_key = None if key is None else key.clone()
        value = tensors.get(f"{prefix}last_value")
        self.last_value = None if value is None else value.clone()
        self.first_reference = (EncodedReference.from_tensors(tensors, f"{prefix}first_reference.")
                                if f"{prefix}first_reference.key" in tensors else None)


def _check_half_range(logits: torch.Tensor, frame_index: int) -> None:
    """Refuse a frame whose half-precision logits overflowed, instead of writing garbage.

    The float32 steps (attention and memory softmaxes, norms, the memory distances, the colour
    conversion) cannot overflow; what is left is an activation past the half type's range.
    The check is one reduction on a tensor the caller copies to the host anyway.
    """
    if bool(torch.isfinite(logits).all()):
        return
    from colorize.errors import PrecisionRangeError

    name = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(logits.dtype, str(logits.dtype))
    limit = torch.finfo(logits.dtype).max
    raise PrecisionRangeError(
        f"frame {frame_index}: the network overflowed {name} (a value beyond +-{limit:g}, "
        "giving inf or NaN); rerun with --fp32")
