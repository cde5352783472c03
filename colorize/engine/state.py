"""The saved form of one video's engine state: tensors plus JSON-able metadata.

Holds everything the next frames depend on -- the memory bank (permanent references, working
and long-term memory with their usage counters), the hidden state, the last memory frame read by
the short-term attention, the schedule's counters, the encoded references and where the video
is (next frame, shot, reference in use). Restoring it and feeding the remaining frames gives the
same numbers as a run that never stopped (bit for bit on CPU in fp32). No pickle: a caller
stores :meth:`VideoState.state_tensors` with safetensors and :meth:`VideoState.state_meta` as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

STATE_VERSION = 1


@dataclass(frozen=True)
class VideoState:
    """One video's engine state after frame ``next_frame - 1``."""

    tensors: dict[str, "torch.Tensor"]
    meta: dict

    @property
    def next_frame(self) -> int:
        return int(self.meta["next_frame"])

    def state_tensors(self) -> dict[str, "torch.Tensor"]:
        """Name -> tensor (contiguous, on the device the run used)."""
        return {name: tensor.contiguous() for name, tensor in self.tensors.items()}

    def state_meta(self) -> dict:
        """JSON-able counters and settings (also what :meth:`restore` checks)."""
        return dict(self.meta)

    @classmethod
    def restore(cls, tensors: dict[str, "torch.Tensor"], meta: dict) -> "VideoState":
        """Rebuild a state from what :meth:`state_tensors` and :meth:`state_meta` gave."""
        if meta.get("version") != STATE_VERSION:
            raise ValueError(f"engine state version {meta.get('version')!r}, expected {STATE_VERSION}")
        missing = [name for name in meta.get("tensor_names", []) if name not in tensors]
        if missing:
            raise ValueError(f"engine state lacks tensors: {', '.join(missing[:5])}")
        return cls(dict(tensors), dict(meta))
