"""Dimensions of the network, checked against a checkpoint before loading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch


@dataclass(frozen=True)
class ModelConfig:
    """Widths of the ColorMNet checkpoint (``DINOv2FeatureV6_LocalAtten_s2_154000``).

    Only the three memory widths vary between XMem-family checkpoints; the backbones are fixed.
    """

    key_dim: int = 64
    value_dim: int = 512
    hidden_dim: int = 64
    # The short-term attention looks at a (2 * max_offset + 1)^2 window on the stride-16 grid.
    local_max_offset: int = 7
    # Inputs are padded to multiples of lcm(14, 16) so the DINOv2 grid maps onto the stride-16 grid.
    pad_multiple: int = 112

    @property
    def window(self) -> int:
        return 2 * self.local_max_offset + 1

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> "ModelConfig":
        """Read the widths from a checkpoint; raise ``ValueError`` naming what is inconsistent."""
        try:
            key_dim = state_dict["key_proj.key_proj.weight"].shape[0]
            value_dim = state_dict["value_encoder.fuser.block2.conv2.weight"].shape[0]
            hidden_dim = (state_dict["decoder.hidden_update.transform.weight"].shape[0]) // 3
            window_area = state_dict["short_term_attn.relative_emb_k.weight"].shape[0]
        except KeyError as missing:
            raise ValueError(f"not a ColorMNet checkpoint: key {missing} is missing") from None
        window = round(window_area ** 0.5)
        if window * window != window_area or window % 2 == 0:
            raise ValueError(f"short-term attention has {window_area} offsets, not an odd square")
        config = cls(key_dim=key_dim, value_dim=value_dim, hidden_dim=hidden_dim,
                     local_max_offset=window // 2)
        if config != cls():
            raise ValueError(
                f"checkpoint widths key={key_dim} value={value_dim} hidden={hidden_dim} "
                f"window={window} differ from ColorMNet's 64/512/64/15; this is another model"
            )
        return config
