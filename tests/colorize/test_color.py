"""Our LAB conversions checked against kornia's, an independent implementation.

kornia computes in float32 and truncates nothing, so the comparison is within float32 noise
for the forward transform and within one grey level for the uint8 inverse.
"""

from __future__ import annotations

import pytest
import torch

from colorize.color import lab_to_rgb_uint8, rgb_to_lab

kornia = pytest.importorskip("kornia", reason="kornia is a test extra: pip install -e '.[test]'")


def _random_rgb(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, 48, 40), dtype=torch.uint8, generator=generator)


def test_rgb_to_lab_matches_kornia() -> None:
    rgb = _random_rgb()
    ours = rgb_to_lab(rgb)
    theirs = kornia.color.rgb_to_lab(rgb.to(torch.float64)[None] / 255.0)[0]
    assert ours.dtype == torch.float64
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


def test_lab_to_rgb_matches_kornia_within_one_level() -> None:
    rgb = _random_rgb(1)
    lab = rgb_to_lab(rgb).to(torch.float32)
    ours = lab_to_rgb_uint8(lab).to(torch.int16)
    theirs = kornia.color.lab_to_rgb(lab[None], clip=True)[0]
    theirs_uint8 = (theirs * 255.0).to(torch.uint8).to(torch.int16)
    assert (ours - theirs_uint8).abs().max().item() <= 1
    # The round trip through our own pair gives back the input up to truncation.
    assert (ours - rgb.to(torch.int16)).abs().max().item() <= 1
