"""Key encoder (ResNet50 + DINOv2 fused by cross-channel attention), key projection, value encoder."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from colorize.model.dinov2 import DinoBranch
from colorize.model.layers import (
    FeatureFusionBlock,
    HiddenGRU,
    LayerNorm2d,
    derived_weight,
    fold_objects,
    stem_max_pool,
    unfold_objects,
)
from colorize.model.resnet import BasicBlock, Bottleneck, resnet_stage

DINO_CHANNELS = 4 * 384


class CrossChannelAttention(nn.Module):
    """Channel-to-channel attention: queries from one feature, keys and values from another.

    Each head holds a block of consecutive channels; rows are L2-normalised over space and the
    ``c x c`` similarity is scaled by a learned per-head temperature.
    """

    def __init__(self, dim: int, heads: int = 8) -> None:
        super().__init__()
        inner = dim * 2
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_q = nn.Conv2d(dim, inner, 1)
        self.to_q_dw = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.to_k = nn.Conv2d(dim, inner, 1)
        self.to_k_dw = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.to_v = nn.Conv2d(dim, inner, 1)
        self.to_v_dw = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1))

    def forward(self, query_source: torch.Tensor, key_source: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = query_source.shape
        q = self.to_q_dw(self.to_q(query_source))
        k = self.to_k_dw(self.to_k(key_source))
        v = self.to_v_dw(self.to_v(key_source))

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(batch, self.heads, -1, height * width)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        # Norms over all positions and the c x c softmax in float32: in half precision the
        # sums of squares over a whole frame overflow.
        with torch.autocast(q.device.type, enabled=False):
            q = F.normalize(q.float(), dim=-1)
            k = F.normalize(k.float(), dim=-1)
            attn = ((q @ k.transpose(-2, -1)) * self.temperature.float()).softmax(dim=-1)
        return self.to_out((attn.to(v.dtype) @ v).reshape(batch, -1, height, width))


def conv3x3_of_upsampled(x: torch.Tensor, conv: nn.Conv2d, scale: int) -> torch.Tensor:
    """``conv(bilinear_upsample(x, scale))`` for a 3x3, padding-1 conv, without upsampling ``x``.

    A 3x3 conv is nine 1x1 channel mixes, each read at a shifted position. Channel mixing and
    bilinear resampling commute exactly (one acts across channels, the other within each
    channel), so the nine mixes run at the low resolution, on 1536 channels, and only their
    narrow outputs (``out_channels`` wide) are resampled. Resampling is separable, and so is a
    tap's shift: "upsample along x, then read at x + dx (zero outside the frame, as the conv's
    padding)" is one fixed ``(w, W)`` matrix per column tap, and likewise per row tap. The three
    column taps and the three row taps are then summed inside two small matrix products
    instead of nine full-size shifted adds. Same maths as the direct form in a different
    summation order; for ``fuse3`` (1536 -> 256 channels, x4) it needs 6.5 instead of 89 GFLOP
    at 448x448 and never builds the 1536-channel upsampled map.
    """
    if scale == 1:
        return conv(x)
    batch, in_channels, height, width = x.shape
    out_channels = conv.out_channels
    # Rows ordered (ky, kx, out channel).
    taps_weight = derived_weight(
        conv, ("taps",), lambda w: w.permute(2, 3, 0, 1).reshape(9 * out_channels, -1).contiguous())
    mixed = torch.matmul(taps_weight.to(x.dtype), x.reshape(batch, in_channels, height * width))
    # (B, out, ky, h, kx, w): a tap's column shift and the x resampling act on (kx, w) together.
    mixed = mixed.view(batch, 3, 3, out_channels, height, width).permute(0, 3, 1, 4, 2, 5)
    along_x = shifted_upsampling(width, scale, x.dtype, x.device)      # (3w, W)
    along_y = shifted_upsampling(height, scale, x.dtype, x.device)     # (3h, H)
    rows = mixed.reshape(-1, 3 * width) @ along_x                     # (B*out*3*h, W)
    out = torch.matmul(along_y.t(), rows.view(batch * out_channels, 3 * height, -1))
    out = out.view(batch, out_channels, height * scale, width * scale)
    return out.add_(conv.bias.to(x.dtype).view(1, -1, 1, 1))


@functools.lru_cache(maxsize=16)
def shifted_upsampling(length: int, scale: int, dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
    """``(3 * length, scale * length)``: row ``(k, j)``, column ``X`` holds the weight of input
    ``j`` in a 1-D linear upsampling (``align_corners=False``) read at output ``X + k - 1``;
    zero where that falls outside. Built by upsampling the identity, so the weights (and the
    edge clamping) are exactly those of ``F.interpolate``; they are multiples of 1/8 for the
    scales used, exact in every precision."""
    size = length * scale
    identity = torch.eye(length, dtype=torch.float64).unsqueeze(1)
    upsampled = F.interpolate(identity, scale_factor=float(scale), mode="linear",
                              align_corners=False)[:, 0]                     # (length, size)
    shifted = torch.zeros(3, length, size, dtype=torch.float64)
    for k in range(3):
        d = k - 1
        lo, hi = max(0, -d), size - max(0, d)
        shifted[k, :, lo:hi] = upsampled[:, lo + d:hi + d]
    return shifted.reshape(3 * length, size).to(dtype=dtype, device=device)


class Fuse(nn.Module):
    """Merge DINOv2 features (``enc``, queries) into a ResNet feature of width ``dim`` (``dnc``)."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.encode_enc = nn.Conv2d(in_dim, dim, 3, padding=1)
        self.norm1 = LayerNorm2d(dim)
        self.norm2 = LayerNorm2d(dim)
        self.crossattn = CrossChannelAttention(dim)
        self.norm3 = LayerNorm2d(dim)

    def forward(self, enc: torch.Tensor, dnc: torch.Tensor, upsample: int = 1) -> torch.Tensor:
        """``enc`` is taken bilinearly upsampled by ``upsample`` to ``dnc``'s size."""
        encoded = conv3x3_of_upsampled(enc, self.encode_enc, upsample)
        fused = self.crossattn(self.norm1(encoded), self.norm2(dnc)) + encoded
        return F.relu(self.norm3(fused))


@dataclass
class MultiScaleFeatures:
    """Fused image features at strides 16, 8 and 4 (the Fuse outputs, not raw ResNet maps)."""

    f16: torch.Tensor
    f8: torch.Tensor
    f4: torch.Tensor


class KeyEncoder(nn.Module):
    """ResNet50 up to layer3 and the DINOv2 branch, fused at three scales."""

    def __init__(self) -> None:
        super().__init__()
        # ResNet50 up to layer3 (its layer1 is named res2 in the checkpoint).
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.res2 = resnet_stage(Bottleneck, 64, 64, blocks=3, stride=1)
        self.layer2 = resnet_stage(Bottleneck, 256, 128, blocks=4, stride=2)
        self.layer3 = resnet_stage(Bottleneck, 512, 256, blocks=6, stride=2)
        self.network2 = DinoBranch()
        self.fuse1 = Fuse(DINO_CHANNELS, 1024)
        self.fuse2 = Fuse(DINO_CHANNELS, 512)
        self.fuse3 = Fuse(DINO_CHANNELS, 256)

    def forward(self, image: torch.Tensor) -> MultiScaleFeatures:
        x = stem_max_pool(F.relu(self.bn1(self.conv1(image))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        dino = self.network2(image)
        g16 = self.fuse1(dino, f16)
        g8 = self.fuse2(dino, f8, upsample=2)
        g4 = self.fuse3(dino, f4, upsample=4)
        return MultiScaleFeatures(g16, g8, g4)


class KeyProjection(nn.Module):
    """Key, shrinkage (>= 1) and selection (in (0, 1)) heads on the stride-16 feature."""

    def __init__(self, in_dim: int, key_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, 3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, 3, padding=1)

    def key(self, f16: torch.Tensor) -> torch.Tensor:
        return self.key_proj(f16)

    def shrinkage(self, f16: torch.Tensor) -> torch.Tensor:
        # Squared in float32: a half-precision square overflows above 256.
        return self.d_proj(f16).float() ** 2 + 1

    def selection(self, f16: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.e_proj(f16))


class ValueEncoder(nn.Module):
    """Encodes an image with its (a^, b^) colour into one value per colour channel ("object")."""

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        # ResNet18 up to layer3, on five input channels: three L channels, the object's own
        # colour channel and the other one.
        self.conv1 = nn.Conv2d(5, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = resnet_stage(BasicBlock, 64, 64, blocks=2, stride=1)
        self.layer2 = resnet_stage(BasicBlock, 64, 128, blocks=2, stride=2)
        self.layer3 = resnet_stage(BasicBlock, 128, 256, blocks=2, stride=2)
        self.fuser = FeatureFusionBlock(1024, 256, value_dim, value_dim)
        self.hidden_reinforce = HiddenGRU(value_dim, hidden_dim)

    def forward(self, image: torch.Tensor, f16: torch.Tensor, hidden: torch.Tensor,
                colour: torch.Tensor, deep_update: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``image (B,3,H,W)``, ``f16 (B,1024,h,w)``, ``hidden (B,2,CH,h,w)``, ``colour (B,2,H,W)``.

        Returns the value ``(B, 2, CV, h, w)`` and the hidden state (updated when ``deep_update``).
        """
        num_objects = colour.shape[1]
        # Object o sees [L, L, L, its own channel, the other channel].
        other = colour.flip(1)
        per_object = torch.cat((
            image.unsqueeze(1).expand(-1, num_objects, -1, -1, -1),
            colour.unsqueeze(2),
            other.unsqueeze(2),
        ), dim=2)
        x = fold_objects(per_object)
        x = F.relu(stem_max_pool(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        g = unfold_objects(x, num_objects)
        value = self.fuser(f16, g)
        if deep_update:
            hidden = self.hidden_reinforce(value, hidden)
        return value, hidden
