"""The loaded ColorMNet the nodes share: built once, reused by every prompt until released.

The cache holds one model (ComfyUI users switch checkpoints rarely, and two copies of a 124 M
parameter network are rarely wanted). A prompt with other knobs (memory mode, max side,
reference mode) reuses the same network through a light per-run colorizer.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from colorize.engine import ColorMNetColorizer, FrameColorizer

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
MEMORY_MODES = ("low", "balanced", "high")


@dataclass(frozen=True)
class RunOptions:
    """Per-prompt knobs of a colorize node."""

    memory_mode: str = "balanced"
    max_side: int | None = None          # None: full resolution unless it does not fit
    reference_is_first_frame: bool = False


@dataclass(frozen=True)
class ModelKey:
    path: Path
    mtime_ns: int
    size: int
    device: str
    precision: str


@dataclass
class LoadedModel:
    """What the *Load ColorMNet* node outputs: the built network and where it came from.

    ``holder`` is whatever the node module keeps to let ComfyUI move the weights off the
    device when it needs memory (a ModelPatcher); ``None`` outside ComfyUI.
    """

    key: ModelKey
    base: "ColorMNetColorizer"
    holder: Any = None
    released: bool = field(default=False)

    @property
    def label(self) -> str:
        return f"{self.key.path.name} ({self.base.precision} on {self.base.device})"

    def colorizer(self, options: RunOptions) -> "FrameColorizer":
        """A colorizer over the shared network with this run's knobs."""
        from colorize.cli import MEMORY_PRESETS
        from colorize.engine import ColorMNetColorizer, MemorySettings

        config = replace(
            self.base.config,
            memory=MemorySettings(**MEMORY_PRESETS[options.memory_mode]),
            max_side=options.max_side,
            reference_is_first_frame=options.reference_is_first_frame,
        )
        colorizer = ColorMNetColorizer(self.base.network, self.base.device, self.base.precision, config)
        colorizer.on_event = self.base.on_event
        return colorizer


def _normal_mode():
    import torch

    return torch.inference_mode(False)


def model_key(path: Path, device: str, precision: str) -> ModelKey:
    stat = path.stat()
    return ModelKey(path.resolve(), stat.st_mtime_ns, stat.st_size, device, precision)


class ModelCache:
    """One cached model; :meth:`load` reuses it when file, device and precision match."""

    def __init__(self, build: Callable[..., "ColorMNetColorizer"] | None = None) -> None:
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._build = build
        self.builds = 0

    @property
    def current(self) -> LoadedModel | None:
        return self._model

    def load(self, path: Path, device: str, precision: str) -> tuple[LoadedModel, bool]:
        """The model for ``path``; the flag says whether it was built now (False: reused)."""
        from colorize.engine import EngineConfig, build_colorizer

        key = model_key(path, device, precision)
        with self._lock:
            if self._model is not None and self._model.key == key and not self._model.released:
                return self._model, False
            self._release_locked()
            build = self._build or build_colorizer
            # ComfyUI runs nodes under torch.inference_mode; weights made there would be
            # inference tensors, which the engine's derived-weight cache cannot key on.
            with _normal_mode():
                base = build(EngineConfig(weights=key.path, device=device, precision=precision))
            self.builds += 1
            self._model = LoadedModel(key, base)
            logger.info("colorize: loaded %s", self._model.label)
            return self._model, True

    def reacquire(self, model: LoadedModel) -> LoadedModel:
        """``model`` itself, or a fresh load of the same file if it was released meanwhile
        (ComfyUI keeps a loader node's output between prompts, the cache may not)."""
        if not model.released:
            return model
        key = model.key
        return self.load(key.path, key.device, key.precision)[0]

    def release(self) -> bool:
        """Drop the cached model (the next prompt loads it again); True if one was held."""
        with self._lock:
            return self._release_locked()

    def _release_locked(self) -> bool:
        model, self._model = self._model, None
        if model is None:
            return False
        model.released = True
        model.holder = None
        logger.info("colorize: released %s", model.label)
        return True


#: The process-wide cache the nodes use.
CACHE = ModelCache()
