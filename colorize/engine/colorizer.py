"""Drives one video through ColorMNet: device, precision, chunked key encoding, memory back-off.

The engine never opens files: it takes decoded RGB frames and a reference image as arrays and
yields colorized RGB frames in the same order. The CLI builds it with :func:`build_colorizer`.

Work is split by what depends on earlier outputs. Key encoding (ResNet50, DINOv2, fuse blocks,
key heads) and the colour conversion of a frame depend on nothing else, so they run on chunks of
frames at once; the memory read, decoding and value encoding are sequential. Decoding of the next
frames overlaps with this work (a prefetch thread) and so does the caller's encoding (the
propagation runs in a worker thread and hands finished frames over through a short queue).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, Protocol

import numpy as np

from colorize.errors import (
    ColorizerUnavailableError,
    DeviceUnavailableError,
    OutOfDeviceMemoryError,
)

if TYPE_CHECKING:  # torch-free at import time: the CLI imports this module for its dataclasses
    import torch

    from colorize.memory import MemoryConfig
    from colorize.propagation import ScheduleConfig

logger = logging.getLogger(__name__)

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


# Measured on CPU fp32 (peak RSS of batch 2 minus batch 1 at 448x448): the key encoder needs
# about 2 KB of activations per padded input pixel per frame; half precision halves it.
KEY_ENCODER_BYTES_PER_PIXEL = 2000
# The sequential step (readout, decoder, value encoder) peaks at about the same per pixel.
STEP_BYTES_PER_PIXEL = 2000
# One memory element: key + selection (64 each), shrinkage, 2 x 512 values, usage counters.
MEMORY_BYTES_PER_ELEMENT = (64 + 64 + 1 + 1024 + 2) * 4
MAX_CHUNK = 16
MIN_PROCESSING_SIDE = 112


@dataclass(frozen=True)
class RunPlan:
    """What the engine will do, decided before any work (printed by ``--plan``)."""

    device: str
    precision: str
    frame_size: tuple[int, int]          # (H, W) of the input
    processing_size: tuple[int, int]     # (H, W) the network sees before padding
    padded_size: tuple[int, int]
    chunk_size: int
    estimated_peak_bytes: int
    budget_bytes: int
    budget_source: str
    reason: str = ""

    def describe(self) -> list[str]:
        gib = 1 << 30
        lines = [
            f"device:           {self.device} ({self.precision})",
            f"frame size:       {self.frame_size[1]}x{self.frame_size[0]}",
            f"processing size:  {self.processing_size[1]}x{self.processing_size[0]}"
            f" (padded {self.padded_size[1]}x{self.padded_size[0]})",
            f"key-encode chunk: {self.chunk_size} frames",
            f"estimated peak:   {self.estimated_peak_bytes / gib:.2f} GiB of "
            f"{self.budget_bytes / gib:.2f} GiB free ({self.budget_source})",
        ]
        if self.reason:
            lines.append(f"note:             {self.reason}")
        return lines


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def _padded(size: tuple[int, int], multiple: int = 112) -> tuple[int, int]:
    return (-(-size[0] // multiple) * multiple, -(-size[1] // multiple) * multiple)


def _scaled(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    height, width = size
    if max_side is None or max(height, width) <= max_side:
        return size
    scale = max_side / max(height, width)
    return (max(1, round(height * scale)), max(1, round(width * scale)))


def estimate_peak_bytes(padded: tuple[int, int], chunk: int, half: bool,
                        memory: MemorySettings) -> int:
    """Cost model: weights + chunked key encoding + one step + a full memory bank."""
    pixels = padded[0] * padded[1]
    scale = 0.5 if half else 1.0
    weights = 124_000_000 * (2 if half else 4)
    keys = chunk * pixels * KEY_ENCODER_BYTES_PER_PIXEL * scale
    step = pixels * STEP_BYTES_PER_PIXEL * scale
    positions = pixels // 256
    work = memory.max_mid_term_frames * positions if memory.enable_long_term else 50 * positions
    long_term = memory.max_long_term_elements if memory.enable_long_term else 0
    bank = (work + long_term) * MEMORY_BYTES_PER_ELEMENT
    return int(weights + keys + step + bank)


def make_plan(config: EngineConfig, frame_size: tuple[int, int], device, budget) -> RunPlan:
    """Choose processing size and chunk size so that the estimate fits the free memory."""
    precision = resolve_precision(config.precision, device)
    half = precision in ("fp16", "bf16")
    usable = int(budget.free_bytes * 0.8)
    processing = _scaled(frame_size, config.max_side)
    reason = ""
    while True:
        padded = _padded(processing)
        if estimate_peak_bytes(padded, 1, half, config.memory) <= usable:
            break
        if max(processing) <= MIN_PROCESSING_SIDE:
            break
        processing = _scaled(processing, int(max(processing) * 0.75))
        reason = "processing size lowered to fit the free memory; ab is upsampled to the frame"
    padded = _padded(processing)
    if config.chunk_size is not None:
        chunk = max(1, config.chunk_size)
    else:
        per_frame = padded[0] * padded[1] * KEY_ENCODER_BYTES_PER_PIXEL * (0.5 if half else 1.0)
        spare = usable - estimate_peak_bytes(padded, 0, half, config.memory)
        # On CPU batching frames does not pay (measured at 448x448: 3.06 s/frame with chunks of
        # 4 against 2.87 one at a time: the activations outgrow the caches); on GPUs it does.
        limit = 1 if device.type == "cpu" else MAX_CHUNK
        chunk = int(max(1, min(limit, spare // per_frame)))
    return RunPlan(
        device=str(device), precision=precision, frame_size=frame_size,
        processing_size=processing, padded_size=padded, chunk_size=chunk,
        estimated_peak_bytes=estimate_peak_bytes(padded, chunk, half, config.memory),
        budget_bytes=budget.free_bytes, budget_source=budget.source, reason=reason,
    )


def plan_for(config: EngineConfig, frame_size: tuple[int, int], device=None) -> RunPlan:
    """The plan a run with ``config`` would follow on ``device`` (default: the one ``config``
    asks for), from the memory free now; the model need not be loaded."""
    from colorize.devices import choose_device, memory_budget

    device = device if device is not None else choose_device(config.device)
    return make_plan(config, frame_size, device, memory_budget(device, config.memory_limit_bytes))


# Multiply-adds x 2 per padded input pixel for one frame, value encoding averaged over the
# memory frames (torch's FLOP counter on our modules at 448x448: key 180 G, decode 182 G,
# value 71 G every 5th frame, 376 G per frame; the official modules need about 490 G).
FLOP_PER_PIXEL = 1.875e6
# Sustained throughput assumed for the rough time estimate of --plan; CPU per thread, from the
# 2-core benchmark (448x448: fp32 2.04 s/frame, bf16 1.25 s/frame).
ASSUMED_FLOPS = {"cpu": 92e9, "mps": 3e12, "cuda-fp32": 25e12, "cuda-half": 80e12}
CPU_BF16_SPEEDUP = 1.6


def estimate_seconds_per_frame(plan: RunPlan) -> float:
    """A rough figure for --plan; the benchmarks measure the real one."""
    device = plan.device.split(":")[0]
    if device == "cuda":
        device = "cuda-fp32" if plan.precision == "fp32" else "cuda-half"
    flops = ASSUMED_FLOPS.get(device, ASSUMED_FLOPS["cpu"])
    if device == "cpu":
        import torch

        flops *= max(1, torch.get_num_threads()) * (CPU_BF16_SPEEDUP if plan.precision == "bf16" else 1.0)
    return plan.padded_size[0] * plan.padded_size[1] * FLOP_PER_PIXEL / flops


def resolve_precision(requested: str, device) -> str:
    if requested == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if requested == "fp16" and device.type == "cpu":
        raise DeviceUnavailableError("--fp16 needs a GPU; on CPU use --fp32 (default) or --bf16")
    return requested


def build_colorizer(config: EngineConfig) -> "ColorMNetColorizer":
    """Load the checkpoint and build the ColorMNet colorizer described by ``config``."""
    import torch

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
    network = network.to(device)
    if precision in ("fp16", "bf16"):
        # Half weights once, instead of autocast casting every weight on every call (that cast
        # was 18% of a bf16 frame on CPU). The short-term attention computes in float32.
        network = network.to(torch.float16 if precision == "fp16" else torch.bfloat16)
        network.short_term_attn.float()
    if device.type == "cuda" and precision == "fp32":
        # The goldens are plain fp32: TF32 convolutions would move the numbers.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
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


class _Background:
    """Runs an iterator in a daemon thread, handing items over through a bounded queue.

    Exceptions are re-raised in the consumer; closing stops the producer at its next item.
    """

    _DONE = object()

    def __init__(self, source: Iterable, depth: int, name: str) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(source),), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, iterator: Iterator) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put((False, error))
            return
        self._put((True, self._DONE))

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator:
        try:
            while True:
                ok, item = self._queue.get()
                if not ok:
                    raise item
                if item is self._DONE:
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()


class ColorMNetColorizer:
    """The :class:`FrameColorizer` backed by our ColorMNet."""

    def __init__(self, network, device, precision: str, config: EngineConfig) -> None:
        self.network = network
        self.device = device
        self.precision = precision
        self.config = config
        self.last_plan: RunPlan | None = None
        self.events: list[str] = []      # what the engine had to change during the last run
        self.on_event: Callable[[str], None] = lambda message: logger.warning("%s", message)

    # -- public --------------------------------------------------------------------------------

    def plan(self, frame_size: tuple[int, int]) -> RunPlan:
        return plan_for(self.config, frame_size, self.device)

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray) -> Iterator[np.ndarray]:
        """RGB frames in, RGB frames out; decode, compute and the caller's encode overlap.

        On an accelerator the model runs in a worker thread so that the caller's encoding of
        frame t overlaps the GPU work of frame t+1. On CPU the model already uses every core,
        so it runs in the calling thread (a second thread only added scheduling overhead).
        """
        from colorize.color import assemble_rgb

        def rgb_frames() -> Iterator[np.ndarray]:
            for luminance, ab in self.predict(frames, reference):
                rgb = assemble_rgb(luminance, ab).permute(1, 2, 0)
                yield rgb.cpu().numpy()

        if self.device.type == "cpu":
            yield from rgb_frames()
        else:
            yield from _Background(rgb_frames(), depth=2, name="colorize-compute")

    def predict(self, frames: Iterable[np.ndarray],
                reference: np.ndarray) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
        """Per frame: its normalised L ``(1, H, W)`` and the predicted ab ``(2, H, W)``
        (tanh scale, full frame resolution), both float32 on the device."""
        import torch

        self.events = []
        decoded = _Background(frames, depth=4, name="colorize-decode")
        iterator = iter(decoded)
        with torch.inference_mode(), self._autocast():
            try:
                yield from self._propagate(iterator, reference)
            finally:
                decoded.close()

    # -- internals -----------------------------------------------------------------------------

    def _autocast(self):
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _to_lab(self, rgb: np.ndarray) -> "torch.Tensor":
        """uint8 ``(..., H, W, 3)`` -> normalised LAB ``(..., 3, H, W)`` float32 on the device."""
        import torch

        from colorize.color import rgb_to_normalized_lab

        # Decoded frames can be read-only views; torch wants writable memory.
        tensor = torch.from_numpy(np.require(rgb, requirements=("C", "W"))).to(self.device)
        return rgb_to_normalized_lab(tensor.movedim(-1, -3))

    def _network_input(self, lab: "torch.Tensor", plan: RunPlan, padding) -> "torch.Tensor":
        """Normalised LAB ``(B, C, H, W)`` -> padded network tensor at the processing size."""
        import torch.nn.functional as F

        if plan.processing_size != plan.frame_size:
            lab = F.interpolate(lab, size=plan.processing_size, mode="bilinear",
                                align_corners=False, antialias=True)
        return padding.apply(lab)

    def _propagate(self, frames: Iterator[np.ndarray], reference: np.ndarray):
        """Plan, then run the video; out of memory before the first frame is out restarts it
        at a lower processing size (afterwards the memory bank fixes the size)."""
        from colorize.devices import is_out_of_memory, release_cached_memory

        lookahead = _Lookahead(frames)
        first = lookahead.peek()
        if first is None:
            return
        frame_size = (int(first.shape[0]), int(first.shape[1]))
        if reference.shape[:2] != frame_size:
            raise ValueError(f"reference is {reference.shape[:2]}, frames are {frame_size}")
        plan = self.plan(frame_size)
        if plan.reason:
            self._report(f"{plan.reason} (running at {_size_text(plan.processing_size)})")
        while True:
            self.last_plan = plan
            for line in plan.describe():
                logger.debug("plan: %s", line)
            consumed: list[np.ndarray] = []
            started = False
            try:
                for item in self._run(lookahead, reference, plan, consumed):
                    started = True
                    yield item
                return
            except Exception as error:
                if started or not (isinstance(error, OutOfDeviceMemoryError)
                                   or is_out_of_memory(error)):
                    raise
                if max(plan.processing_size) <= MIN_PROCESSING_SIDE:
                    raise OutOfDeviceMemoryError(
                        "out of memory even at the smallest processing size; free device "
                        "memory or use --device cpu") from None
            release_cached_memory(self.device)
            lookahead.unread(consumed)
            smaller = _scaled(plan.processing_size, int(max(plan.processing_size) * 0.75))
            self._report(f"out of memory at {_size_text(plan.processing_size)} with one frame: "
                         f"processing at {_size_text(smaller)} instead, colour upsampled to the "
                         "frame")
            plan = replace(plan, processing_size=smaller, padded_size=_padded(smaller),
                           chunk_size=1, reason="processing size lowered after running out of memory")

    def _run(self, lookahead: "_Lookahead", reference: np.ndarray, plan: RunPlan,
             consumed: list[np.ndarray]):
        """One pass over the video with ``plan``; frames taken are appended to ``consumed``."""
        import torch.nn.functional as F

        from colorize.propagation import Padding, VideoPropagator

        chunk_size = plan.chunk_size
        settings = self.config.memory
        propagator = VideoPropagator(self.network, settings.memory_config(),
                                     settings.schedule_config())
        padding = Padding.for_size(*plan.processing_size, self.network.config.pad_multiple)

        reference_lab = self._to_lab(reference)[None]
        reference_in = self._network_input(reference_lab, plan, padding)
        reference_ab = reference_in[:, 1:]
        reference_image = reference_in[:, :1].expand(-1, 3, -1, -1)

        index = 0
        while True:
            chunk = lookahead.take(chunk_size)
            if not chunk:
                return
            if index == 0:
                consumed.extend(chunk)
            stack = np.stack(chunk)
            lab = self._to_lab(stack)
            luminance = lab[:, :1]
            images = self._network_input(luminance, plan, padding).expand(-1, 3, -1, -1)
            features, chunk_size = self._encode_keys(images, chunk_size)
            for offset in range(len(chunk)):
                is_last = lookahead.exhausted() and offset == len(chunk) - 1
                image = images[offset:offset + 1]
                frame_features = features.frame(offset)
                if index == 0 and self.config.reference_is_first_frame:
                    ab = propagator.start_with_reference_frame(image, frame_features,
                                                               reference_ab, is_last)
                elif index == 0:
                    exemplar = self.network.encode_key(reference_image)
                    ab = propagator.start_with_exemplar(image, frame_features, reference_image,
                                                        exemplar, reference_ab, is_last)
                else:
                    ab = propagator.step(image, frame_features, is_last)
                ab = padding.remove(ab).float()
                if plan.processing_size != plan.frame_size:
                    ab = F.interpolate(ab, size=plan.frame_size, mode="bilinear",
                                       align_corners=False)
                if index == 0 and self.config.reference_is_first_frame:
                    # Frame 0 keeps the reference's own colours at full resolution.
                    ab = reference_lab[:, 1:]
                yield luminance[offset], ab[0]
                index += 1
            del features, images, lab

    def _report(self, message: str) -> None:
        self.events.append(message)
        self.on_event(message)

    def _encode_keys(self, images, chunk_size: int):
        """Key-encode a chunk, halving the sub-batch on out-of-memory until one frame fits."""
        from colorize.devices import is_out_of_memory, release_cached_memory
        from colorize.model import KeyFeatures

        parts = []
        start = 0
        while start < images.shape[0]:
            size = min(chunk_size, images.shape[0] - start)
            try:
                parts.append(self.network.encode_key(images[start:start + size]))
                start += size
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                release_cached_memory(self.device)
                if size == 1:
                    raise OutOfDeviceMemoryError(
                        "out of memory encoding a single frame; rerun with a smaller --max-side "
                        "or on a device with more free memory") from None
                chunk_size = max(1, size // 2)
                self._report(f"out of memory with {size} frames per chunk: retrying with {chunk_size}")
        return (parts[0] if len(parts) == 1 else KeyFeatures.cat(parts)), chunk_size


class _Lookahead:
    """Pulls frames one ahead so that the last frame of a stream is known when it arrives."""

    def __init__(self, iterator: Iterator[np.ndarray]) -> None:
        self._iterator = iterator
        self._buffer: list[np.ndarray] = []
        self._done = False

    def _fill(self, count: int) -> None:
        while not self._done and len(self._buffer) < count:
            try:
                self._buffer.append(next(self._iterator))
            except StopIteration:
                self._done = True

    def unread(self, frames: list[np.ndarray]) -> None:
        """Put frames back in front, to run them again."""
        self._buffer = list(frames) + self._buffer

    def peek(self) -> np.ndarray | None:
        self._fill(1)
        return self._buffer[0] if self._buffer else None

    def take(self, count: int) -> list[np.ndarray]:
        # One extra frame is pulled so that exhausted() is exact for the chunk's last frame.
        self._fill(count + 1)
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken

    def exhausted(self) -> bool:
        return self._done and not self._buffer
