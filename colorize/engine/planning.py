"""The run plan, decided before any work: processing size and key-encoding chunk from a cost
model and the free memory, plus the rough time figure ``--plan`` prints. Torch-free except for
the CPU thread count of the time estimate."""

from __future__ import annotations

from dataclasses import dataclass

from colorize.engine.config import EngineConfig, MemorySettings
from colorize.engine.precision import choose_precision

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
    precision_reason: str = ""

    def describe(self) -> list[str]:
        gib = 1 << 30
        lines = [
            f"device:           {self.device} ({self.precision})",
            f"precision:        {self.precision}"
            + (f" ({self.precision_reason})" if self.precision_reason else ""),
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


def size_text(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def padded(size: tuple[int, int], multiple: int = 112) -> tuple[int, int]:
    return (-(-size[0] // multiple) * multiple, -(-size[1] // multiple) * multiple)


def scaled(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
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
    choice = choose_precision(config.precision, device)
    precision = choice.precision
    half = precision in ("fp16", "bf16")
    usable = int(budget.free_bytes * 0.8)
    processing = scaled(frame_size, config.max_side)
    reason = ""
    while True:
        size = padded(processing)
        if estimate_peak_bytes(size, 1, half, config.memory) <= usable:
            break
        if max(processing) <= MIN_PROCESSING_SIDE:
            break
        processing = scaled(processing, int(max(processing) * 0.75))
        reason = "processing size lowered to fit the free memory; ab is upsampled to the frame"
    size = padded(processing)
    if config.chunk_size is not None:
        chunk = max(1, config.chunk_size)
    else:
        per_frame = size[0] * size[1] * KEY_ENCODER_BYTES_PER_PIXEL * (0.5 if half else 1.0)
        spare = usable - estimate_peak_bytes(size, 0, half, config.memory)
        # On CPU batching frames does not pay (measured at 448x448: 3.06 s/frame with chunks of
        # 4 against 2.87 one at a time: the activations outgrow the caches); on GPUs it does.
        limit = 1 if device.type == "cpu" else MAX_CHUNK
        chunk = int(max(1, min(limit, spare // per_frame)))
    return RunPlan(
        device=str(device), precision=precision, frame_size=frame_size,
        processing_size=processing, padded_size=size, chunk_size=chunk,
        estimated_peak_bytes=estimate_peak_bytes(size, chunk, half, config.memory),
        budget_bytes=budget.free_bytes, budget_source=budget.source, reason=reason,
        precision_reason=choice.reason,
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
