"""DINOv2 ViT-S/14 as ColorMNet uses it: the last four blocks, each normalised, as feature maps.

The transformer is :class:`colorize.model.vit.VisionTransformerS14` (weights from the
checkpoint). Two things differ from a plain ViT forward and are done here:
- the positional embedding is resized the way DINOv2 does it (bicubic with scale factors
  ``(g + 0.1) / 37`` and no antialias), which timm's dynamic-size path does not reproduce;
- every returned block output goes through the final LayerNorm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from colorize.model.vit import EMBED_DIM, PATCH_SIZE, VisionTransformerS14

# DINOv2 adds this to the target grid size before turning it into a scale factor.
INTERPOLATE_OFFSET = 0.1
FEATURE_BLOCKS = (8, 9, 10, 11)


def interpolate_pos_embed(pos_embed: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """Positional embedding ``(1, 1 + gh*gw, C)`` for a ``grid_h x grid_w`` patch grid."""
    class_pos = pos_embed[:, :1]
    patch_pos = pos_embed[:, 1:]
    side = int(math.sqrt(patch_pos.shape[1]))
    grid = patch_pos.float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = ((grid_h + INTERPOLATE_OFFSET) / side, (grid_w + INTERPOLATE_OFFSET) / side)
    resized = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False,
                            antialias=False)
    if resized.shape[-2:] != (grid_h, grid_w):
        raise RuntimeError(f"positional embedding resized to {tuple(resized.shape[-2:])}, "
                           f"expected {(grid_h, grid_w)}")
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1).to(pos_embed.dtype)
    return torch.cat((class_pos, resized), dim=1)


class DinoBranch(nn.Module):
    """DINOv2 features projected (1x1 conv, BN, ReLU) and resampled onto the stride-16 grid."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = VisionTransformerS14()
        channels = len(FEATURE_BLOCKS) * EMBED_DIM
        self.conv3 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self._pos_cache: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}

    def _pos_embed(self, grid_h: int, grid_w: int, like: torch.Tensor) -> torch.Tensor:
        # The resized embedding depends only on the grid; weights never change after loading.
        key = (grid_h, grid_w, like.dtype, like.device)
        cached = self._pos_cache.get(key)
        if cached is None:
            cached = interpolate_pos_embed(self.backbone.pos_embed, grid_h, grid_w).to(like.dtype)
            self._pos_cache = {key: cached}
        return cached

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)``, H and W multiples of 112 -> ``(B, 1536, H/16, W/16)``."""
        features = F.relu(self.bn3(self.conv3(self.block_features(image))))
        grid_h, grid_w = features.shape[-2:]
        # 14/16 of the patch grid: an exact 8/7 downscale when sides are multiples of 112.
        size = (int(grid_h * PATCH_SIZE / 16), int(grid_w * PATCH_SIZE / 16))
        return F.interpolate(features, size=size, mode="bilinear", align_corners=False)

    def block_features(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)``, H and W multiples of 14 -> ``(B, 4*384, H/14, W/14)``: the outputs of
        the last four blocks, each through the final LayerNorm, without the class token."""
        vit = self.backbone
        batch = image.shape[0]
        grid_h, grid_w = image.shape[-2] // PATCH_SIZE, image.shape[-1] // PATCH_SIZE
        tokens = vit.patch_embed.proj(image).flatten(2).transpose(1, 2)
        tokens = torch.cat((vit.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + self._pos_embed(grid_h, grid_w, tokens)
        maps = []
        for index, block in enumerate(vit.blocks):
            tokens = block(tokens)
            if index in FEATURE_BLOCKS:
                normed = vit.norm(tokens[:, 1:])
                maps.append(normed.transpose(1, 2).reshape(batch, -1, grid_h, grid_w))
            if index == FEATURE_BLOCKS[-1]:
                break
        return torch.cat(maps, dim=1)
