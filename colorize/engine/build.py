"""Building the colorizer: device, CPU set-up, checkpoint, network in the run's precision."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from colorize.engine.colorizer import ColorMNetColorizer
from colorize.engine.config import EngineConfig
from colorize.engine.precision import prepare_network, resolve_precision
from colorize.errors import ColorizerUnavailableError

logger = logging.getLogger(__name__)


def build_colorizer(config: EngineConfig) -> ColorMNetColorizer:
    """Load the checkpoint and build the ColorMNet colorizer described by ``config``."""
    from colorize.devices import choose_device, configure_cpu_threads, keep_freed_host_memory
    from colorize.model import ColorMNet

    device = choose_device(config.device)
    precision = resolve_precision(config.precision, device)
    if device.type == "cpu":
        configure_cpu_threads()
        keep_freed_host_memory()
    started = time.perf_counter()
    state_dict = _load_state_dict(config.weights)
    try:
        network = ColorMNet.from_state_dict(state_dict)
    except (ValueError, RuntimeError) as error:
        raise ColorizerUnavailableError(f"{config.weights}: not a ColorMNet checkpoint ({error})") from None
    network = prepare_network(network, device, precision)
    logger.debug("model ready on %s (%s) in %.2f s", device, precision, time.perf_counter() - started)
    return ColorMNetColorizer(network, device, precision, config)


def _load_state_dict(path: Path):
    try:
        from colorize.weights import load_checkpoint, verify_state_dict
    except ImportError:  # pragma: no cover - weights module is part of the package
        raise ColorizerUnavailableError("the weights module is missing from this install") from None
    state_dict = load_checkpoint(path)
    verify_state_dict(state_dict, label=str(path))
    return state_dict
