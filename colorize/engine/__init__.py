"""Drives one video through ColorMNet: device, precision, chunked key encoding, memory back-off.

The engine never opens files: it takes decoded RGB frames and a reference image as arrays and
yields colorized RGB frames in the same order. The CLI builds it with :func:`build_colorizer`.
Importing this package does not import torch (the CLI imports it for its dataclasses).

Modules, one job each:

* ``config``: ``EngineConfig``, ``MemorySettings`` and the ``FrameColorizer`` protocol.
* ``planning``: the ``RunPlan`` (processing size, chunk size) from a cost model and the free
  memory, and the rough time estimate of ``--plan``.
* ``precision``: what ``auto`` precision means on a device, the network's one-time cast, autocast.
* ``streams``: the background thread with a bounded queue and the one-frame lookahead.
* ``guide``: ``VideoGuide`` (keyframe references, shot cuts, per-frame callback, resume state)
  and the per-frame ``FrameRecord`` (memory-match score, reference and shot in use).
* ``state``: ``VideoState``, one video's engine state as tensors + JSON-able metadata.
* ``video``: ``VideoRun``, the sequential part of one video (shots, references, propagator).
* ``colorizer``: ``ColorMNetColorizer``, the driver (plan, chunks, out-of-memory back-off).
* ``build``: ``build_colorizer`` (checkpoint -> network -> colorizer).
"""

from colorize.engine.build import build_colorizer
from colorize.engine.colorizer import ColorMNetColorizer
from colorize.engine.config import EngineConfig, FrameColorizer, MemorySettings, Precision
from colorize.engine.guide import FrameRecord, VideoGuide
from colorize.engine.planning import (
    ASSUMED_FLOPS,
    CPU_BF16_SPEEDUP,
    FLOP_PER_PIXEL,
    KEY_ENCODER_BYTES_PER_PIXEL,
    MAX_CHUNK,
    MEMORY_BYTES_PER_ELEMENT,
    MIN_PROCESSING_SIDE,
    STEP_BYTES_PER_PIXEL,
    RunPlan,
    estimate_peak_bytes,
    estimate_seconds_per_frame,
    make_plan,
    plan_for,
)
from colorize.engine.planning import padded as _padded
from colorize.engine.planning import scaled as _scaled
from colorize.engine.planning import size_text as _size_text
from colorize.engine.precision import resolve_precision
from colorize.engine.state import VideoState
from colorize.engine.streams import Background as _Background
from colorize.engine.streams import Lookahead as _Lookahead
from colorize.errors import (
    ColorizerUnavailableError,
    DeviceUnavailableError,
    OutOfDeviceMemoryError,
)

__all__ = [
    "ASSUMED_FLOPS", "CPU_BF16_SPEEDUP", "FLOP_PER_PIXEL", "KEY_ENCODER_BYTES_PER_PIXEL",
    "MAX_CHUNK", "MEMORY_BYTES_PER_ELEMENT", "MIN_PROCESSING_SIDE", "STEP_BYTES_PER_PIXEL",
    "ColorMNetColorizer", "ColorizerUnavailableError", "DeviceUnavailableError", "EngineConfig",
    "FrameColorizer", "FrameRecord", "MemorySettings", "OutOfDeviceMemoryError", "Precision", "RunPlan",
    "VideoGuide", "VideoState", "build_colorizer", "estimate_peak_bytes", "estimate_seconds_per_frame", "make_plan",
    "plan_for", "resolve_precision",
]
