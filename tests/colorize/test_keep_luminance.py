"""``keep_luminance``: the colour of a generated picture on the gray keyframe's own lightness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize.color import keep_luminance, rgb_to_lab


def _gray_level(lightness: torch.Tensor) -> torch.Tensor:
    """The 8-bit grey level whose Lab L is ``lightness`` (the inverse of L for R = G = B)."""
    y = torch.where(lightness > 8.0, ((lightness + 16.0) / 116.0) ** 3, lightness / 903.3)
    return 255.0 * torch.where(y > 0.0031308, 1.055 * y ** (1 / 2.4) - 0.055, 12.92 * y)


def _lightness(rgb: np.ndarray) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1))[0]


def test_keep_luminance_keeps_the_gray_level_even_for_colours_out_of_gamut() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (40, 56), dtype=np.uint8)
    generated = rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)  # other size, saturated colours
    merged = keep_luminance(generated, gray)
    assert merged.shape == (40, 56, 3) and merged.dtype == np.uint8
    levels = _gray_level(_lightness(merged))
    assert (levels - torch.from_numpy(gray).double()).abs().max().item() <= 1.0
    assert np.array_equal(merged, keep_luminance(generated, np.repeat(gray[:, :, None], 3, axis=2)))


def test_keep_luminance_takes_the_generated_colour() -> None:
    rng = np.random.default_rng(1)
    generated = rng.integers(60, 200, (24, 32, 3), dtype=np.uint8)
    # The generated picture's own lightness as the "gray": the merge must give it back.
    gray = np.clip(np.rint(_gray_level(_lightness(generated)).numpy()), 0, 255).astype(np.uint8)
    merged = keep_luminance(generated, gray)
    assert np.abs(merged.astype(int) - generated.astype(int)).max() <= 2
    # And a darker gray darkens the result without turning it gray.
    darker = keep_luminance(generated, (gray * 0.6).astype(np.uint8))
    lab = rgb_to_lab(torch.from_numpy(darker).permute(2, 0, 1))
    assert lab[1:].abs().mean().item() > 5.0


def test_keep_luminance_refuses_what_is_not_uint8_rgb() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        keep_luminance(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        keep_luminance(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8))
