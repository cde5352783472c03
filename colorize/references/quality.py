"""How good a frame is as a still to colour: cheap measures on a small luminance thumbnail.

Every measure is taken on the frame's luma (BT.601 weights, 0-255) shrunk to at most
:data:`ANALYSIS_SIDE` pixels a side, so one frame costs well under a millisecond at any size
(``benchmarks/bench_keyframes.py``) - a tiny fraction of colorizing it. Grey footage has no
colour to measure, and the colorizer sees only luminance, so nothing here looks at hue.

Measures (:class:`FrameMeasures`)
---------------------------------
* ``mean``: mean luma. Below ``QualityConfig.black_mean`` the frame is *near-black* (a fade
  from or to black, a night shot with nothing lit): nothing to colour.
* ``clipped``: the share of pixels at 250 or above. Above ``QualityConfig.max_clipped`` the
  frame is *blown-out* (a flash, an overexposed window): the model cannot see what is there.
* ``contrast``: standard deviation of luma. Below ``QualityConfig.min_contrast`` the frame is
  *flat* (the middle of a dissolve, fog, a title card's blank).
* ``fade_rate``: how fast the mean luma changes around the frame, levels per frame (the larger
  of the change over the ``fade_span`` frames before and after it). Above
  ``QualityConfig.max_fade_rate`` the frame is *fading*: a fade in or out, a dissolve, a light
  switched on; its exposure is not that of the shot.
* ``sharpness``: the standard deviation of the thumbnail's Laplacian over its contrast, so a
  dim sharp frame is not taken for a blurred one. Motion blur and defocus lower it.

Score
-----
``quality = exposure * min(1, contrast / 40) * sharpness / (sharpness + 0.5)``, where
``exposure = (1 - clipped - dark share) * (1 - |mean - 128| / 256)``: in [0, 1], higher is
better. Each failed check (near-black, blown-out, flat, fading) multiplies it by
:data:`REJECT_FACTOR` (0.05), so a bad frame loses to any acceptable one but bad frames can
still be ranked when a shot has nothing else. The constants were set on synthetic clips (no
real footage was at hand); they rank frames *within a shot*, they are not a calibrated
absolute grade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ANALYSIS_SIDE", "FrameMeasures", "QualityConfig", "luma_thumbnail", "mean_luma",
           "measure"]

#: Longest side of the thumbnail every measure is taken on.
ANALYSIS_SIDE = 192
#: Factor a score is multiplied by for each failed check.
REJECT_FACTOR = 0.05
#: Luma at or below which a pixel counts as dark, at or above which as clipped.
DARK_LEVEL = 16
CLIPPED_LEVEL = 250

_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class QualityConfig:
    """Limits of the checks (0-255 luma levels; see the module docstring)."""

    black_mean: float = 24.0
    max_clipped: float = 0.4
    min_contrast: float = 8.0
    max_fade_rate: float = 1.5
    fade_span: int = 2

    def __post_init__(self) -> None:
        if self.fade_span < 1:
            raise ValueError(f"fade_span must be >= 1, got {self.fade_span}")
        if not 0 < self.max_clipped <= 1:
            raise ValueError(f"max_clipped must be in (0, 1], got {self.max_clipped}")


@dataclass(frozen=True)
class FrameMeasures:
    """The measures of one frame (module docstring) and what they say."""

    mean: float
    dark: float
    clipped: float
    contrast: float
    sharpness: float
    fade_rate: float

    def problems(self, config: QualityConfig) -> list[str]:
        """Names of the failed checks: near-black, blown-out, flat, fading."""
        found = []
        if self.mean < config.black_mean:
            found.append("near-black")
        if self.clipped > config.max_clipped:
            found.append("blown-out")
        if self.contrast < config.min_contrast:
            found.append("flat")
        if self.fade_rate > config.max_fade_rate:
            found.append("fading")
        return found

    def score(self, config: QualityConfig) -> float:
        exposure = max(0.0, 1.0 - self.clipped - self.dark) * (1.0 - abs(self.mean - 128) / 256)
        contrast = min(1.0, self.contrast / 40.0)
        sharp = self.sharpness / (self.sharpness + 0.5)
        quality = exposure * contrast * sharp
        return quality * REJECT_FACTOR ** len(self.problems(config))

    def as_json(self) -> dict[str, float]:
        return {name: round(float(getattr(self, name)), 4) for name in
                ("mean", "dark", "clipped", "contrast", "sharpness", "fade_rate")}


def _check_frame(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")


def mean_luma(rgb: np.ndarray) -> float:
    """Mean luma from a sparse grid of pixels (about 4,000): cheap enough for every frame."""
    _check_frame(rgb)
    height, width = rgb.shape[:2]
    step = max(1, int(math.sqrt(height * width / 4096)))
    return float((rgb[::step, ::step].astype(np.float32) @ _LUMA_WEIGHTS).mean())


def luma_thumbnail(rgb: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Luma (float32, 0-255) shrunk by a whole factor to at most ``side`` pixels a side.

    Every ``factor / 2``-th pixel is taken and 2x2 blocks of those averaged: a quarter of
    the reads of a full box filter, and enough averaging that decimation does not alias
    noise into the sharpness measure.
    """
    _check_frame(rgb)
    height, width = rgb.shape[:2]
    factor = max(1, math.ceil(max(height, width) / side))
    if factor == 1:
        return rgb.astype(np.float32) @ _LUMA_WEIGHTS
    step = max(1, factor // 2)
    picked = rgb[::step, ::step].astype(np.float32) @ _LUMA_WEIGHTS
    if factor == step:  # factor 1 handled above; factor 2 and 3 give step 1
        return picked
    rows, cols = picked.shape[0] // 2 * 2, picked.shape[1] // 2 * 2
    if rows == 0 or cols == 0:
        return picked
    blocks = picked[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2)
    return blocks.mean(axis=(1, 3))


def measure(thumbnail: np.ndarray, fade_rate: float = 0.0) -> FrameMeasures:
    """The measures of a frame from its :func:`luma_thumbnail` (``fade_rate`` from outside:
    it needs the neighbouring frames)."""
    luma = thumbnail
    contrast = float(luma.std())
    if luma.shape[0] >= 3 and luma.shape[1] >= 3:
        laplacian = (luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
                     - 4.0 * luma[1:-1, 1:-1])
        sharpness = float(laplacian.std()) / (contrast + 1.0)
    else:
        sharpness = 0.0
    return FrameMeasures(
        mean=float(luma.mean()),
        dark=float((luma <= DARK_LEVEL).mean()),
        clipped=float((luma >= CLIPPED_LEVEL).mean()),
        contrast=contrast,
        sharpness=sharpness,
        fade_rate=float(fade_rate),
    )
