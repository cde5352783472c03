"""ViT-S/14 with DINOv2's layout: patch embedding, class token, 12 pre-norm blocks with
LayerScale, final LayerNorm.

Written here rather than built with timm so that loading the model imports neither timm nor
torchvision (about two seconds of start-up). Parameter names are the checkpoint's
(``blocks.N.attn.qkv``, ``blocks.N.ls1.gamma``, ...); the arithmetic is timm's
``vit_small_patch14_dinov2`` (fused scaled-dot-product attention, exact GELU), checked against
it in the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EMBED_DIM = 384
DEPTH = 12
HEADS = 6
MLP_RATIO = 4
PATCH_SIZE = 14
# The positional embedding covers a 37x37 patch grid (518 px) plus the class token.
POS_EMBED_GRID = 37
NORM_EPS = 1e-6


class PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, EMBED_DIM, PATCH_SIZE, stride=PATCH_SIZE)


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(EMBED_DIM, 3 * EMBED_DIM)
        self.proj = nn.Linear(EMBED_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, HEADS, channels // HEADS) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, channels))


class FeedForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(EMBED_DIM, MLP_RATIO * EMBED_DIM)
        self.fc2 = nn.Linear(MLP_RATIO * EMBED_DIM, EMBED_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(EMBED_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class TransformerBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(EMBED_DIM, eps=NORM_EPS)
        self.attn = SelfAttention()
        self.ls1 = LayerScale()
        self.norm2 = nn.LayerNorm(EMBED_DIM, eps=NORM_EPS)
        self.mlp = FeedForward()
        self.ls2 = LayerScale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformerS14(nn.Module):
    """The parameters and blocks; :class:`colorize.model.dinov2.DinoBranch` drives them."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POS_EMBED_GRID ** 2, EMBED_DIM))
        # Used only in DINOv2's training; kept so that the checkpoint loads strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, EMBED_DIM))
        self.blocks = nn.ModuleList(TransformerBlock() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(EMBED_DIM, eps=NORM_EPS)
