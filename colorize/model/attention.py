"""Short-term local attention over the last memory frame, computed window by window.

For every query position p and every offset o of a centred (2r+1)^2 window, the logit is
``<q_p / sqrt(C), k_{p+o}> + rel(q)_{o,p}`` where ``rel`` is a 1x1 conv of the unscaled query;
offsets falling outside the frame get zero weight (they still occupy a softmax slot as exact
zeros). The weighted sum of values goes through a bias-free depthwise 5x5 conv and a per-pixel
linear layer that mixes the channels of both objects.

The official code builds a dense (hw x hw) matrix. Two paths here, same numbers:
- small grids (up to ``DENSE_MAX_POSITIONS``, e.g. 448x448 frames): the (hw x hw) products
  run as matrix multiplications, and only the window's entries are gathered from / scattered
  into them; a few MFLOP of dense work is far cheaper than 225 strided sweeps;
- larger grids: memory and compute grow with positions x window, the window walked one row
  offset at a time.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


# Up to this many stride-16 positions the dense path is used (a 720x720 frame has 2025).
DENSE_MAX_POSITIONS = 2048


class _DepthwiseConv(nn.Module):
    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels,
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def window_logits(query: torch.Tensor, key: torch.Tensor, max_offset: int) -> torch.Tensor:
    """``sum_c query[c, p] * key[c, p + o]`` for every offset: ``(B, C, h, w)`` -> ``(B, W*W, h, w)``.

    Offsets are ordered row offset first (dy), then column offset (dx), both from -r to r;
    keys outside the frame count as zero.
    """
    r = max_offset
    window = 2 * r + 1
    batch, channels, height, width = query.shape
    padded = F.pad(key, (r, r, r, r))
    rows = []
    for dy in range(window):
        band = padded[:, :, dy:dy + height]                       # (B, C, h, w + 2r)
        # (B, C, h, w, window) view of the band: column x, offset dx -> column x + dx.
        shifted = band.unfold(3, window, 1)
        # A broadcast multiply and a channel sum; an einsum here turns into a batched matmul
        # over strided views that copies its operand thousands of times.
        rows.append((query.unsqueeze(-1) * shifted).sum(1).permute(0, 3, 1, 2))
    return torch.cat(rows, dim=1)


def window_aggregate(weights: torch.Tensor, value: torch.Tensor, max_offset: int) -> torch.Tensor:
    """``sum_o weights[o, p] * value[:, p + o]``: ``(B, W*W, h, w)``, ``(B, C, h, w)`` -> ``(B, C, h, w)``.

    Values outside the frame are zero. Accumulates one offset at a time so no
    ``C x W*W x hw`` temporary is ever built.
    """
    r = max_offset
    window = 2 * r + 1
    height, width = value.shape[-2:]
    padded = F.pad(value, (r, r, r, r))
    out = torch.zeros_like(value)
    for index in range(window * window):
        dy, dx = divmod(index, window)
        out.addcmul_(weights[:, index:index + 1], padded[:, :, dy:dy + height, dx:dx + width])
    return out


@functools.lru_cache(maxsize=8)
def window_index(height: int, width: int, max_offset: int, device: torch.device) -> torch.Tensor:
    """``(h*w, W*W)`` int64: flat index of the key at query position p + offset o, or ``h*w``
    (a spare slot) where that falls outside the frame. Offsets are ordered as in
    :func:`window_logits`."""
    r = max_offset
    offsets = torch.arange(-r, r + 1, device=device)
    ys = torch.arange(height, device=device)[:, None, None, None] + offsets[None, None, :, None]
    xs = torch.arange(width, device=device)[None, :, None, None] + offsets[None, None, None, :]
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)     # (h, w, dy, dx)
    index = torch.where(inside, ys * width + xs, torch.full_like(ys * xs, height * width))
    return index.reshape(height * width, -1)


def dense_window_logits(query: torch.Tensor, key: torch.Tensor, max_offset: int) -> torch.Tensor:
    """:func:`window_logits` through the full ``(h*w x h*w)`` product, window entries gathered."""
    batch, channels, height, width = query.shape
    positions = height * width
    index = window_index(height, width, max_offset, query.device)
    products = torch.bmm(query.reshape(batch, channels, positions).transpose(1, 2),
                         key.reshape(batch, channels, positions))        # (B, query, key)
    products = F.pad(products, (0, 1))                                     # the spare slot: 0
    logits = products.gather(2, index.expand(batch, -1, -1))              # (B, query, offset)
    return logits.transpose(1, 2).reshape(batch, -1, height, width)


def dense_window_aggregate(weights: torch.Tensor, value: torch.Tensor,
                           max_offset: int) -> torch.Tensor:
    """:func:`window_aggregate` as one matrix product with the window weights scattered into a
    ``(h*w x h*w)`` matrix (weights of outside offsets are exact zeros and go to the spare
    slot, which is dropped)."""
    batch, channels, height, width = value.shape
    positions = height * width
    index = window_index(height, width, max_offset, value.device)
    spread = weights.new_zeros(batch, positions, positions + 1)
    spread.scatter_(2, index.expand(batch, -1, -1), weights.reshape(batch, -1, positions).transpose(1, 2))
    out = torch.bmm(value.reshape(batch, channels, positions), spread[:, :, :positions].transpose(1, 2))
    return out.reshape(batch, channels, height, width)


@functools.lru_cache(maxsize=8)
def outside_frame_mask(height: int, width: int, max_offset: int,
                       device: torch.device) -> torch.Tensor:
    """``(W*W, h, w)`` boolean: True where position + offset leaves the frame (the spare slot
    of :func:`window_index`)."""
    spare = height * width
    return (window_index(height, width, max_offset, device) == spare).t().reshape(-1, height, width)


class LocalAttention(nn.Module):
    """The short-term attention (``short_term_attn`` in the checkpoint)."""

    def __init__(self, key_dim: int, value_channels: int, max_offset: int) -> None:
        super().__init__()
        self.max_offset = max_offset
        self.dense_max_positions = DENSE_MAX_POSITIONS
        self.key_dim = key_dim
        window = 2 * max_offset + 1
        self.relative_emb_k = nn.Conv2d(key_dim, window * window, 1)
        self.dw_conv = _DepthwiseConv(value_channels, 5)
        self.projection = nn.Linear(value_channels, value_channels)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """``query, key (B, CK, h, w)``, ``value (B, CV_total, h, w)`` -> ``(B, CV_total, h, w)``.

        Always computed in float32: it is a small share of the work, and half-precision
        window sums lose accuracy (and are slower on CPUs).
        """
        with torch.autocast(query.device.type, enabled=False):
            return self._attend(query.float(), key.float(), value.float())

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        height, width = query.shape[-2:]
        dense = height * width <= self.dense_max_positions
        relative = self.relative_emb_k(query)
        logits_of = dense_window_logits if dense else window_logits
        logits = logits_of(query / (self.key_dim ** 0.5), key, self.max_offset) + relative
        outside = outside_frame_mask(height, width, self.max_offset, query.device)
        # Softmax in float32 whatever the compute precision; masked offsets become exact zeros
        # (a finite fill: the same zeros, and never a NaN should a row be all masked).
        weights = logits.masked_fill(outside, torch.finfo(logits.dtype).min).softmax(dim=1)
        aggregate = dense_window_aggregate if dense else window_aggregate
        aggregated = aggregate(weights, value, self.max_offset)
        mixed = self.dw_conv(aggregated)
        return self.projection(mixed.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
