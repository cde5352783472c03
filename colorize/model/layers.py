"""Building blocks shared by the encoders and the decoder.

"Group" tensors carry one slice per colour channel: shape ``(B, 2, C, H, W)`` where object 0 is
a^ and object 1 is b^. Group layers fold the object axis into the batch, so both objects share
weights and never interact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fold_objects(g: torch.Tensor) -> torch.Tensor:
    """``(B, O, C, H, W)`` -> ``(B*O, C, H, W)``."""
    return g.flatten(0, 1)


def unfold_objects(x: torch.Tensor, num_objects: int) -> torch.Tensor:
    """``(B*O, C, H, W)`` -> ``(B, O, C, H, W)``."""
    return x.view(-1, num_objects, *x.shape[1:])


def broadcast_cat(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Concatenate an object-independent ``x (B, Cx, H, W)`` before every object of ``g``."""
    expanded = x.unsqueeze(1).expand(-1, g.shape[1], -1, -1, -1)
    return torch.cat((expanded, g), dim=2)


def resize_group(g: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    """Resample every object of a group tensor by ``scale``."""
    num_objects = g.shape[1]
    if mode == "area":
        # Exact multiples only: 'area' equals block averaging (bitwise on CPU), which is cheaper.
        factor = round(1 / scale)
        resized = F.avg_pool2d(fold_objects(g), kernel_size=factor)
    else:
        resized = F.interpolate(fold_objects(g), scale_factor=scale, mode="bilinear",
                                align_corners=False)
    return unfold_objects(resized, num_objects)


def stem_max_pool(x: torch.Tensor) -> torch.Tensor:
    """The ResNet stem's 3x3, stride-2, padding-1 max pool, as two separable strided maxima.

    Bitwise the same as ``F.max_pool2d(x, 3, 2, 1)`` (a max is exact in any order), about 5x
    faster on CPU, where the library kernel also computes the argmax indices.
    """
    height, width = x.shape[-2:]
    out_h, out_w = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    padded = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
    cols = torch.maximum(padded[..., 0:2 * out_w:2], padded[..., 1:2 * out_w + 1:2])
    cols = torch.maximum(cols, padded[..., 2:2 * out_w + 2:2], out=cols)
    out = torch.maximum(cols[..., 0:2 * out_h:2, :], cols[..., 1:2 * out_h + 1:2, :])
    return torch.maximum(out, cols[..., 2:2 * out_h + 2:2, :], out=out)


class LayerNorm2d(nn.Module):
    """Per-pixel LayerNorm over channels: biased variance, ``eps`` inside the square root."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32 whatever the compute precision: a half-precision variance
        # over 1024 channels loses accuracy and can overflow. The centred map is computed once
        # and updated in place (torch.var_mean is slower here: it reduces across the
        # channel planes one position at a time).
        x32 = x.float()
        centred = x32 - x32.mean(1, keepdim=True)
        var = (centred * centred).mean(1, keepdim=True)
        y = centred.mul_(torch.rsqrt(var.add_(self.eps)))
        out = torch.addcmul(self.bias.float()[:, None, None], y, self.weight.float()[:, None, None])
        return out.to(x.dtype)


class GroupResBlock(nn.Module):
    """Two 3x3 convs with pre-activation and a residual; a 3x3 conv skip when widths differ."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.downsample = nn.Conv2d(in_dim, out_dim, 3, padding=1) if in_dim != out_dim else None
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        num_objects = g.shape[1]
        x = fold_objects(g)
        out = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = self.downsample(x) if self.downsample is not None else x
        return unfold_objects(out + skip, num_objects)

    def forward_shared(self, shared: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Same as ``forward(broadcast_cat(shared, g))`` with the shared part convolved once.

        The first conv and the skip conv are linear in their input channels, so the
        object-independent channels (image features, identical for a^ and b^) contribute the
        same term to both objects; it is computed once and broadcast.
        """
        if self.downsample is None:
            raise ValueError("forward_shared needs a block that changes width")
        num_objects = g.shape[1]
        split = shared.shape[1]
        per_object = fold_objects(g)
        hidden = _conv_part(self.conv1, F.relu(shared), 0, split, with_bias=False)
        hidden = hidden.unsqueeze(1) + unfold_objects(
            _conv_part(self.conv1, F.relu(per_object), split, None, with_bias=True), num_objects)
        skip = _conv_part(self.downsample, shared, 0, split, with_bias=False).unsqueeze(1) + \
            unfold_objects(_conv_part(self.downsample, per_object, split, None, with_bias=True),
                           num_objects)
        out = self.conv2(F.relu(fold_objects(hidden)))
        return unfold_objects(out, num_objects) + skip


def _conv_part(conv: nn.Conv2d, x: torch.Tensor, start: int, stop: int | None,
               with_bias: bool) -> torch.Tensor:
    """``conv`` restricted to its input channels ``start:stop``.

    The sliced weight is kept contiguous in a cache on the conv (weights are frozen at
    inference); re-slicing on every call costs a weight copy inside the convolution.
    """
    part = derived_weight(conv, ("part", start, stop), lambda w: w[:, start:stop].contiguous())
    return F.conv2d(x, part, conv.bias if with_bias else None, conv.stride, conv.padding)


def derived_weight(conv: nn.Conv2d, name: tuple, build) -> torch.Tensor:
    """``build(conv.weight)``, kept on the conv until its weight changes (device, dtype, data).

    Weights are frozen at inference, so rearranged copies of them are made once per run
    instead of once per frame.
    """
    weight = conv.weight
    cache = conv.__dict__.setdefault("_derived_weights", {})
    key = (name, weight.dtype, weight.device, weight._version, weight.data_ptr())
    derived = cache.get(key)
    if derived is None:
        if len(cache) >= 8:   # stale entries from an earlier device or dtype
            cache.clear()
        derived = cache[key] = build(weight)
    return derived


class ChannelGate(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Index 0 is a flatten and index 2 a ReLU in the checkpoint's Sequential; keep the
        # numbering so that parameter names are ``mlp.1`` and ``mlp.3``.
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        peak = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(avg + peak)[:, :, None, None]


class _SpatialConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialGate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.spatial = _SpatialConv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.amax(1, keepdim=True), x.mean(1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """Channel gate then spatial gate; returns the gated tensor (no residual)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels)
        self.SpatialGate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))


class FeatureFusionBlock(nn.Module):
    """Fuse an object-independent feature with per-object features, with CBAM in the middle."""

    def __init__(self, x_dim: int, g_dim: int, mid_dim: int, out_dim: int) -> None:
        super().__init__()
        self.block1 = GroupResBlock(x_dim + g_dim, mid_dim)
        self.attention = CBAM(mid_dim)
        self.block2 = GroupResBlock(mid_dim, out_dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        num_objects = g.shape[1]
        g = self.block1.forward_shared(x, g)
        refined = unfold_objects(self.attention(fold_objects(g)), num_objects)
        return self.block2(g + refined)


class HiddenGRU(nn.Module):
    """The recurrent update of the hidden state, a GRU variant kept exactly as trained.

    Gates come out of one 3x3 conv in the order (forget, update, candidate); the candidate sees
    the raw hidden state (no reset gate) and the forget gate scales the old state.
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.transform = nn.Conv2d(input_dim + hidden_dim, hidden_dim * 3, 3, padding=1)

    def forward(self, g: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        num_objects = g.shape[1]
        gates = self.transform(fold_objects(torch.cat((g, hidden), dim=2)))
        gates = unfold_objects(gates, num_objects)
        d = self.hidden_dim
        forget = torch.sigmoid(gates[:, :, :d])
        update = torch.sigmoid(gates[:, :, d:2 * d])
        candidate = torch.tanh(gates[:, :, 2 * d:])
        return forget * hidden * (1 - update) + update * candidate
