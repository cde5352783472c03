"""Rewritten computations equal the direct forms they replace: in float64 where only the
summation order differs, bitwise where nothing can."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorize.model.encoders import conv3x3_of_upsampled
from colorize.model.layers import GroupResBlock, broadcast_cat, stem_max_pool


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("batch, height, width", [(1, 7, 7), (2, 3, 5), (1, 1, 4)])
def test_conv_of_upsampled_equals_conv_after_upsampling(scale, batch, height, width):
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 5, 3, padding=1).double()
    x = torch.randn(batch, 12, height, width, dtype=torch.float64)
    with torch.no_grad():
        direct = conv(F.interpolate(x, scale_factor=float(scale), mode="bilinear",
                                    align_corners=False))
        rewritten = conv3x3_of_upsampled(x, conv, scale)
    assert rewritten.shape == direct.shape
    torch.testing.assert_close(rewritten, direct, rtol=0, atol=1e-12)


def test_shared_part_of_a_group_block_is_convolved_once_with_the_same_result():
    torch.manual_seed(0)
    block = GroupResBlock(6 + 4, 8).double()
    shared = torch.randn(1, 6, 5, 5, dtype=torch.float64)
    per_object = torch.randn(1, 2, 4, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        direct = block(broadcast_cat(shared, per_object))
        rewritten = block.forward_shared(shared, per_object)
    torch.testing.assert_close(rewritten, direct, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 4, 7, 9), (1, 1, 1, 2)])
def test_stem_max_pool_is_bitwise_the_library_pool(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(stem_max_pool(x), F.max_pool2d(x, 3, 2, 1))
