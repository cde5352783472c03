"""What the engine is given (``EngineConfig``, ``MemorySettings``) and what it promises
(the :class:`FrameColorizer` protocol). Torch-free: the CLI imports these for its options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Literal, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from colorize.memory import MemoryConfig
    from colorize.propagation import ScheduleConfig

Precision = Literal["auto", "fp32", "fp16", "bf16"]


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

    def memory_config(self) -> "MemoryConfig":
        """The memory bank's share of the knobs."""
        from colorize.memory import MemoryConfig

        return MemoryConfig(
            top_k=self.top_k, max_mid_term_frames=self.max_mid_term_frames,
            min_mid_term_frames=self.min_mid_term_frames, num_prototypes=self.num_prototypes,
            max_long_term_elements=self.max_long_term_elements,
            enable_long_term=self.enable_long_term,
        )

    def schedule_config(self) -> "ScheduleConfig":
        """The per-frame schedule's share of the knobs."""
        from colorize.propagation import ScheduleConfig

        return ScheduleConfig(mem_every=self.mem_every, deep_update_every=self.deep_update_every)


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to colorize one video."""

    weights: Path
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    precision: Precision = "auto"
    reference_is_first_frame: bool = False
    memory: MemorySettings = MemorySettings()
    # Longest side the network runs at; None: full resolution unless it would not fit.
    max_side: int | None = None
    # Frames key-encoded together; None: sized from the free memory.
    chunk_size: int | None = None
    # Pretend the device has at most this many bytes free (planning and tests).
    memory_limit_bytes: int | None = None


class FrameColorizer(Protocol):
    """What the CLI drives: frames in, colorized frames out, same count and order.

    ``frames`` are (H, W, 3) uint8 RGB arrays (grayscale input already expanded to RGB);
    ``reference`` is an (H, W, 3) uint8 RGB array already resized to the frame size.
    Each yielded array is (H, W, 3) uint8 RGB.
    """

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray) -> Iterator[np.ndarray]:
        ...
