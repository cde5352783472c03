"""ColorMNet as explicit stages: encode key, encode value, short-term attention, decode.

The memory read sits between them and lives in :mod:`colorize.memory`; the per-frame schedule
lives in :mod:`colorize.engine`. Parameter names follow the official checkpoint so that its
state_dict loads strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from colorize.model.attention import LocalAttention
from colorize.model.config import ModelConfig
from colorize.model.decoder import Decoder
from colorize.model.encoders import KeyEncoder, KeyProjection, ValueEncoder

NUM_OBJECTS = 2  # the a^ and b^ channels


@dataclass
class KeyFeatures:
    """Everything the key encoder gives for a batch of frames (``B`` frames)."""

    key: torch.Tensor        # (B, CK, h, w)
    shrinkage: torch.Tensor  # (B, 1, h, w), >= 1
    selection: torch.Tensor  # (B, CK, h, w), in (0, 1)
    f16: torch.Tensor        # (B, 1024, h, w)
    f8: torch.Tensor         # (B, 512, 2h, 2w)
    f4: torch.Tensor         # (B, 256, 4h, 4w)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.key, self.shrinkage, self.selection, self.f16, self.f8, self.f4)

    def frame(self, index: int) -> "KeyFeatures":
        """The features of one frame of the batch, keeping a batch axis of 1."""
        return KeyFeatures(*(t[index:index + 1] for t in self.tensors()))

    @classmethod
    def cat(cls, parts: list["KeyFeatures"]) -> "KeyFeatures":
        """Batches encoded separately, joined along the batch axis."""
        return cls(*(torch.cat(tensors, dim=0) for tensors in zip(*(p.tensors() for p in parts))))


class ColorMNet(nn.Module):
    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.key_encoder = KeyEncoder()
        self.key_proj = KeyProjection(1024, c.key_dim)
        self.value_encoder = ValueEncoder(c.value_dim, c.hidden_dim)
        self.short_term_attn = LocalAttention(c.key_dim, NUM_OBJECTS * c.value_dim,
                                              c.local_max_offset)
        self.decoder = Decoder(c.value_dim, c.hidden_dim)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> "ColorMNet":
        """Build the network on the meta device and adopt the checkpoint's tensors (strict).

        No random initialisation is run, so construction costs nothing beyond the load.
        """
        config = ModelConfig.from_state_dict(state_dict)
        with torch.device("meta"):
            model = cls(config)
        model.load_state_dict(state_dict, strict=True, assign=True)
        return model.eval()

    def empty_hidden(self, key: torch.Tensor) -> torch.Tensor:
        """Zero hidden state matching a key's grid: ``(B, 2, CH, h, w)``."""
        batch, _, height, width = key.shape
        return key.new_zeros(batch, NUM_OBJECTS, self.config.hidden_dim, height, width)

    def encode_key(self, image: torch.Tensor, need_shrinkage: bool = True,
                   need_selection: bool = True) -> KeyFeatures:
        """Image ``(B, 3, Hp, Wp)`` (normalised L replicated) -> key, heads and features."""
        features = self.key_encoder(image)
        key = self.key_proj.key(features.f16)
        shrinkage = self.key_proj.shrinkage(features.f16) if need_shrinkage else key[:, :0]
        selection = self.key_proj.selection(features.f16) if need_selection else key[:, :0]
        return KeyFeatures(key, shrinkage, selection, features.f16, features.f8, features.f4)

    def encode_value(self, image: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor,
                     colour: torch.Tensor, deep_update: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory value of an image with its colour ``(B, 2, Hp, Wp)``, and the hidden state."""
        return self.value_encoder(image, f16, hidden, colour, deep_update)

    def short_term_attention(self, key: torch.Tensor, last_key: torch.Tensor,
                             last_value: torch.Tensor) -> torch.Tensor:
        """Attention of this frame's key over the last memory frame: ``(B, 2, CV, h, w)``."""
        batch, num_objects, channels, height, width = last_value.shape
        flat_value = last_value.reshape(batch, num_objects * channels, height, width)
        out = self.short_term_attn(key, last_key, flat_value)
        return out.view(batch, num_objects, channels, height, width)

    def decode(self, features: KeyFeatures, readout: torch.Tensor, hidden: torch.Tensor,
               update_hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``(B, 2, Hp, Wp)`` (pre-tanh) and the new hidden state when asked for."""
        return self.decoder(features.f16, features.f8, features.f4, readout, hidden, update_hidden)
