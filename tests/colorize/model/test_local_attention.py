"""The windowed short-term attention equals a dense formulation over all position pairs."""

from __future__ import annotations

import pytest
import torch

from colorize.model.attention import (
    LocalAttention,
    dense_window_aggregate,
    dense_window_logits,
    window_aggregate,
    window_logits,
)


def dense_local_attention(module: LocalAttention, q, k, v):
    """Reference: every query against every key position, window applied as a mask.

    Builds the (hw x hw) logits the official code builds, keeping only keys within
    +-max_offset rows and columns; the relative term is looked up by the offset index.
    """
    r = module.max_offset
    window = 2 * r + 1
    _, channels, height, width = q.shape
    positions = height * width
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[None, :] - ys[:, None]        # key row - query row, (query, key)
    dx = xs[None, :] - xs[:, None]
    inside = (dy.abs() <= r) & (dx.abs() <= r)
    offset_index = ((dy + r) * window + (dx + r)).clamp(0, window * window - 1)
    relative = module.relative_emb_k(q).reshape(window * window, positions)   # (offset, query)
    qf = q.reshape(channels, positions) / channels ** 0.5
    kf = k.reshape(channels, positions)
    logits = qf.t() @ kf + relative.t().gather(1, offset_index)
    logits = logits.masked_fill(~inside, float("-inf"))
    attn = logits.softmax(dim=1)
    aggregated = (attn @ v.reshape(v.shape[1], positions).t()).t().reshape(1, -1, height, width)
    mixed = module.dw_conv(aggregated)
    return module.projection(mixed.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("path", ["windowed", "gathered"])
@pytest.mark.parametrize("size", [(5, 9), (14, 14), (17, 23), (1, 30)])
def test_windowed_equals_dense(size, path):
    torch.manual_seed(sum(size))
    module = LocalAttention(key_dim=16, value_channels=24, max_offset=7).eval()
    module.dense_max_positions = 0 if path == "windowed" else 10 ** 6
    height, width = size
    q = torch.randn(1, 16, height, width)
    k = torch.randn(1, 16, height, width)
    v = torch.randn(1, 24, height, width)
    with torch.no_grad():
        ours = module(q, k, v)
        reference = dense_local_attention(module, q, k, v)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["windowed", "gathered"])
def test_offsets_outside_the_frame_contribute_nothing(path):
    torch.manual_seed(0)
    module = LocalAttention(key_dim=8, value_channels=8, max_offset=2).eval()
    module.dense_max_positions = 0 if path == "windowed" else 10 ** 6
    q = torch.randn(1, 8, 4, 4)
    k = torch.randn(1, 8, 4, 4)
    v = torch.zeros(1, 8, 4, 4)
    v[..., 0, 0] = 1.0    # only the top-left position carries a value
    with torch.no_grad():
        ours = module(q, k, v)
        reference = dense_local_attention(module, q, k, v)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("logits_of", [window_logits, dense_window_logits])
def test_logit_offsets_are_row_major_over_the_window(logits_of):
    q = torch.zeros(1, 1, 3, 3)
    q[0, 0, 1, 1] = 1.0
    k = torch.arange(9.0).reshape(1, 1, 3, 3)
    logits = logits_of(q, k, max_offset=1)[0, :, 1, 1]
    assert logits.tolist() == list(range(9))   # offset (dy, dx) -> key at (1+dy, 1+dx)


def test_both_paths_agree_on_a_batch():
    torch.manual_seed(3)
    q, k = torch.randn(2, 4, 6, 7), torch.randn(2, 4, 6, 7)
    v = torch.randn(2, 5, 6, 7)
    weights = torch.rand(2, 25, 6, 7)
    torch.testing.assert_close(dense_window_logits(q, k, 2), window_logits(q, k, 2))
    # Weights of offsets outside the frame meet zero padding in one path and are dropped in the
    # other: both ignore them.
    torch.testing.assert_close(dense_window_aggregate(weights, v, 2), window_aggregate(weights, v, 2))
