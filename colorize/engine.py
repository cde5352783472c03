"""Drives one video through the colorization model.

The engine never opens files: it takes decoded RGB frames and a reference image as arrays and
yields colorized RGB frames in the same order. The CLI builds it with :func:`build_colorizer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Protocol

import numpy as np

from colorize.errors import ColorizerUnavailableError


@dataclass(frozen=True)
class MemorySettings:
    """Memory-bank knobs; defaults are the official test.py defaults."""

    mem_every: int = 5
    top_k: int = 30
    max_mid_term_frames: int = 10
    min_mid_term_frames: int = 5
    num_prototypes: int = 128
    max_long_term_elements: int = 10000
    deep_update_every: int = -1
    enable_long_term: bool = True


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to colorize one video."""

    weights: Path
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    reference_is_first_frame: bool = False
    memory: MemorySettings = MemorySettings()


class FrameColorizer(Protocol):
    """What the CLI drives: frames in, colorized frames out, same count and order.

    ``frames`` are (H, W, 3) uint8 RGB arrays (grayscale input already expanded to RGB);
    ``reference`` is an (H, W, 3) uint8 RGB array already resized to the frame size.
    Each yielded array is (H, W, 3) uint8 RGB.
    """

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray) -> Iterator[np.ndarray]:
        ...


def build_colorizer(config: EngineConfig) -> FrameColorizer:
    """Build the ColorMNet colorizer described by ``config``."""
    raise ColorizerUnavailableError(
        "no colorizer is available yet: the ColorMNet model is not part of this build"
    )
