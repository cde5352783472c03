"""Decoder: readout + hidden state + multi-scale features -> (a^, b^) logits, and the hidden update."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize.model.layers import (
    FeatureFusionBlock,
    GroupResBlock,
    HiddenGRU,
    fold_objects,
    resize_group,
    unfold_objects,
)


class UpsampleBlock(nn.Module):
    """Upsample a group feature by 2 and add a projected skip feature of the finer scale."""

    def __init__(self, skip_dim: int, g_dim: int, out_dim: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, g_dim, 3, padding=1)
        self.out_conv = GroupResBlock(g_dim, out_dim)

    def forward(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = resize_group(g, 2.0, mode="bilinear")
        g = self.skip_conv(skip).unsqueeze(1) + g
        return self.out_conv(g)


class HiddenUpdater(HiddenGRU):
    """The decoder's hidden-state update from its features at three scales and the logits."""

    def __init__(self, dims: tuple[int, int, int], mid_dim: int, hidden_dim: int) -> None:
        super().__init__(mid_dim, hidden_dim)
        self.g16_conv = nn.Conv2d(dims[0], mid_dim, 1)
        self.g8_conv = nn.Conv2d(dims[1], mid_dim, 1)
        self.g4_conv = nn.Conv2d(dims[2] + 1, mid_dim, 1)

    def update(self, g16: torch.Tensor, g8: torch.Tensor, g4_with_logits: torch.Tensor,
               hidden: torch.Tensor) -> torch.Tensor:
        num_objects = g16.shape[1]
        x = (self.g16_conv(fold_objects(g16))
             + self.g8_conv(fold_objects(resize_group(g8, 0.5, mode="area")))
             + self.g4_conv(fold_objects(resize_group(g4_with_logits, 0.25, mode="area"))))
        return self.forward(unfold_objects(x, num_objects), hidden)


class Decoder(nn.Module):
    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fuser = FeatureFusionBlock(1024, value_dim + hidden_dim, 512, 512)
        self.hidden_update = HiddenUpdater((512, 256, 256), 256, hidden_dim)
        self.up_16_8 = UpsampleBlock(512, 512, 256)
        self.up_8_4 = UpsampleBlock(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, 3, padding=1)

    def forward(self, f16: torch.Tensor, f8: torch.Tensor, f4: torch.Tensor,
                readout: torch.Tensor, hidden: torch.Tensor,
                update_hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the logits ``(B, 2, 4h*4, 4w*4)`` at full padded size (pre-tanh) and, when
        ``update_hidden``, the new hidden state."""
        num_objects = readout.shape[1]
        g16 = self.fuser(f16, torch.cat((readout, hidden), dim=2))
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits4 = self.pred(F.relu(fold_objects(g4)))
        new_hidden = None
        if update_hidden:
            g4_with_logits = torch.cat((g4, unfold_objects(logits4, num_objects)), dim=2)
            new_hidden = self.hidden_update.update(g16, g8, g4_with_logits, hidden)
        logits = F.interpolate(logits4, scale_factor=4.0, mode="bilinear", align_corners=False)
        return unfold_objects(logits, num_objects)[:, :, 0], new_hidden
