"""Shared pieces of the colorize benchmarks: weights, synthetic video, samplers, environment.

Nothing here measures anything by itself. ``bench_colorize.py`` and ``bench_memory.py`` import it
(the benchmarks folder is not a package, so each script puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import gc
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS_DIR = ROOT / "benchmarks" / "results"
WEIGHTS_RULE = ROOT / "tests" / "fixtures" / "make_test_weights.py"
CHECKPOINT_SPEC = ROOT / "colorize" / "model" / "checkpoint_spec.json"
GIB = 1 << 30
MIB = 1 << 20


# -- weights -------------------------------------------------------------------------------------

def synthetic_state_dict() -> dict:
    """The full-size synthetic checkpoint (rule crc32-normal-v1): real shapes, made-up values.

    Speed and memory do not depend on the weight values, so this stands in for the trained
    checkpoint, which the benchmarks must not need.
    """
    spec = importlib.util.spec_from_file_location("make_test_weights", WEIGHTS_RULE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the synthetic-weights rule {WEIGHTS_RULE}")
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    entries = json.loads(CHECKPOINT_SPEC.read_text())["entries"]
    return rule.build_state_dict(entries)


@contextlib.contextmanager
def weights_file(path: Path | None) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, description)``: the given checkpoint, or a temporary synthetic one.

    The engine's public entry point loads from a file, so synthetic weights are written once to
    a temporary safetensors file (about 0.5 GB) and removed afterwards.
    """
    if path is not None:
        if not path.is_file():
            raise SystemExit(f"--weights {path}: no such file; "
                             "omit --weights to use synthetic weights")
        yield path, f"{path.name} (given with --weights)"
        return
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="colorize-bench-") as folder:
        target = Path(folder) / "synthetic.safetensors"
        state_dict = synthetic_state_dict()
        save_file({key: value.contiguous() for key, value in state_dict.items()}, str(target))
        del state_dict
        release_host_memory()
        yield target, "synthetic (crc32-normal-v1 rule, built in memory)"


# -- synthetic video -----------------------------------------------------------------------------

def _structure(height: int, width: int, t: float, seed: int) -> np.ndarray:
    """A float image in [0, 1]: gradients, a drifting sinusoidal texture, moving blobs, noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    image = 0.35 * x + 0.25 * y
    image = image + 0.15 * np.sin(2 * math.pi * (6 * x + 3 * y + 0.05 * t)).astype(np.float32)
    for blob in range(3):
        cy = 0.5 + 0.3 * math.sin(0.07 * t + 2.1 * blob)
        cx = 0.5 + 0.3 * math.cos(0.05 * t + 1.3 * blob)
        radius = 0.08 + 0.04 * blob
        image = image + 0.3 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius ** 2))
    image = image + rng.normal(0.0, 0.03, size=(height, width)).astype(np.float32)
    return np.clip(image, 0.0, 1.0)


def gray_frame(height: int, width: int, index: int) -> np.ndarray:
    """Frame ``index`` of a grayscale video, expanded to RGB (H, W, 3) uint8 like the CLI does."""
    gray = (_structure(height, width, float(index), seed=index) * 255.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def colourful_reference(height: int, width: int) -> np.ndarray:
    """A saturated reference: hue sweeps across the image, brightness follows the structure."""
    value = 0.4 + 0.6 * _structure(height, width, 0.0, seed=12345)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    phase = 2 * math.pi * (x + 0.5 * y)
    channels = [0.5 + 0.5 * np.sin(phase + offset) for offset in (0.0, 2.1, 4.2)]
    rgb = np.stack([np.broadcast_to(c, (height, width)) * value for c in channels], axis=2)
    return (np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


class FramePool:
    """Cycles through ``distinct`` pre-made frames so that frame generation stays out of timings."""

    def __init__(self, height: int, width: int, distinct: int) -> None:
        self.frames = [gray_frame(height, width, index) for index in range(max(1, distinct))]

    def video(self, count: int) -> Iterator[np.ndarray]:
        for index in range(count):
            yield self.frames[index % len(self.frames)]


# -- samplers ------------------------------------------------------------------------------------

def current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def process_max_rss() -> int:
    """The process's all-time peak RSS (getrusage; kilobytes on Linux)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def release_host_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so a run's RSS does not include the
    previous run's leftovers (glibc keeps freed arenas otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """The exact peak RSS of this process over a ``with`` block, with no sampling thread.

    Linux keeps the peak (VmHWM) and lets a process reset it (``/proc/self/clear_refs``), so
    nothing runs beside the measured work: on a 2-core machine a 20 ms sampler thread costs
    about 3% of a CPU frame, since both compute threads wait whenever one is preempted. Where
    that is unavailable, falls back to a :class:`PeakSampler`.
    """

    def __init__(self, fallback_interval: float = 0.05) -> None:
        self.max_rss = 0
        self._fallback: PeakSampler | None = None
        self._interval = fallback_interval

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _high_water_mark() -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def __enter__(self) -> "PeakRss":
        if not (self._reset() and self._high_water_mark() is not None):
            self._fallback = PeakSampler(interval=self._interval).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._fallback is not None:
            self._fallback.__exit__(*exc)
            self.max_rss = self._fallback.max_rss
        else:
            self.max_rss = self._high_water_mark() or current_rss()


class PeakSampler:
    """Background thread: the largest RSS and, on CUDA, the smallest device free memory seen.

    Sampling every ``interval`` seconds can miss a short spike, so the figures are lower bounds
    of the true peak / upper bounds of the true minimum free memory.
    """

    def __init__(self, interval: float = 0.02, cuda_device=None) -> None:
        self.interval = interval
        self.cuda_device = cuda_device
        self.max_rss = 0
        self.interval_max_rss = 0
        self.min_free: int | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def take_max_rss(self) -> int:
        """The largest RSS since the last call (or the start), then start a new interval."""
        value, self.interval_max_rss = self.interval_max_rss, current_rss()
        return max(value, self.interval_max_rss)

    def _sample(self) -> None:
        rss = current_rss()
        self.max_rss = max(self.max_rss, rss)
        self.interval_max_rss = max(self.interval_max_rss, rss)
        if self.cuda_device is not None:
            import torch

            free, _ = torch.cuda.mem_get_info(self.cuda_device)
            self.min_free = free if self.min_free is None else min(self.min_free, free)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


# -- environment ---------------------------------------------------------------------------------

def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class OtherLoad:
    """CPU time spent by other processes while a measurement ran, as a share of all CPUs.

    Reads the machine's busy time from /proc/stat and subtracts this process's own CPU time;
    a share near 0 means the measurement had the machine to itself. None where /proc is absent.
    """

    def __init__(self) -> None:
        self.share: float | None = None

    @staticmethod
    def _busy_seconds() -> float | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        ticks = [int(value) for value in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def __enter__(self) -> "OtherLoad":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "OtherLoad":
        self._busy, self._own = self._busy_seconds(), self._own_seconds()
        self._wall = time.perf_counter()
        return self

    def stop(self) -> None:
        busy = self._busy_seconds()
        if busy is None or self._busy is None:
            return
        wall = time.perf_counter() - self._wall
        others = (busy - self._busy) - (self._own_seconds() - self._own)
        self.share = max(0.0, others / (wall * (os.cpu_count() or 1))) if wall > 0 else None


def wait_for_quiet(max_wait_s: float, threshold: float = 0.15, window_s: float = 3.0) -> float:
    """Wait until other processes use less than ``threshold`` of the CPUs over ``window_s``,
    for at most ``max_wait_s``; returns the seconds waited. On a small shared machine a test
    run beside a benchmark slows it by far more than its share, so measurements wait for it."""
    waited = 0.0
    while waited < max_wait_s:
        with OtherLoad() as others:
            time.sleep(window_s)
        if others.share is None or others.share < threshold:
            break
        waited += window_s
    return waited


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (OSError, AttributeError):
        return None


#: A load average above this many runnable processes per core means other work shared the CPU.
BUSY_LOAD_PER_CORE = 0.5


def was_busy(load: list[float] | None, cores: int, own_threads: int = 0) -> bool:
    """Whether the 1-minute ``load`` says other work shared ``cores`` cores; ``own_threads``:
    the benchmark's own busy threads when the load was read while it ran."""
    return bool(load) and load[0] > own_threads + BUSY_LOAD_PER_CORE * cores


def environment(device_name: str) -> dict:
    """Who measured what where: device, versions, code revision (and whether it had local edits)."""
    import torch

    dirty = _git("status", "--porcelain", "--", "colorize")
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device_name,
        "cpu": _cpu_name(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "colorize_has_uncommitted_changes": bool(dirty),
        "load_average_start": load_average(),
    }


def environment_line(env: dict, weights: str) -> str:
    """One line for a result's Markdown: device, CPU, torch, code revision, weights."""
    edited = " with uncommitted changes in colorize/" if env["colorize_has_uncommitted_changes"] \
        else ""
    return (f"{env['device']} ({env['cpu']}, {env['logical_cpus']} logical CPUs), torch "
            f"{env['torch']}, code {env['git_commit']}{edited}. Weights: {weights}.")


def today() -> str:
    return _dt.date.today().isoformat()


# -- output --------------------------------------------------------------------------------------

def write_atomic(path: Path, data: str | bytes) -> None:
    """Write beside the target and rename, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        temporary.write_bytes(data)
    else:
        temporary.write_text(data)
    os.replace(temporary, path)


def write_json(path: Path, document: dict) -> None:
    write_atomic(path, json.dumps(document, indent=2, default=str) + "\n")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value).replace("|", "/").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def matplotlib_pyplot():
    """``matplotlib.pyplot`` with a file-only backend, or None (the plot is then skipped)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        print("matplotlib is not installed: no plot (pip install the 'bench' extra to get one)")
        return None
    return pyplot


def save_figure(pyplot, figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    figure.savefig(temporary, dpi=110, bbox_inches="tight")
    pyplot.close(figure)
    os.replace(temporary, path)


# -- accuracy ------------------------------------------------------------------------------------

def psnr(reference: np.ndarray, other: np.ndarray, peak_to_peak: float) -> float:
    """PSNR in dB of ``other`` against ``reference`` for signals spanning ``peak_to_peak``."""
    difference = reference.astype(np.float64) - other.astype(np.float64)
    mse = float(np.mean(difference ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak_to_peak ** 2 / mse)


@dataclass
class Stopwatch:
    """Timestamps of yielded frames, relative to when the stopwatch started."""

    started: float = field(default_factory=time.perf_counter)
    stamps: list[float] = field(default_factory=list)

    def tick(self) -> None:
        self.stamps.append(time.perf_counter() - self.started)


def psnr_frames(reference: list[np.ndarray], other: list[np.ndarray], peak: float) -> float:
    """PSNR over the frames both lists have, taken as one signal."""
    count = min(len(reference), len(other))
    return psnr(np.stack(reference[:count]), np.stack(other[:count]), peak)


def add_run_arguments(parser, device_default: str = "auto", size_default: int = 112) -> None:
    """The options every engine benchmark takes: weights, device, precision, size, output, -v."""
    parser.add_argument("--weights", type=Path, help="checkpoint (default: synthetic weights)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=device_default)
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto")
    parser.add_argument("--size", type=int, default=size_default,
                        help=f"square frame side (default {size_default})")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("-v", "--verbose", action="store_true")


def write_result(stem: Path, document: dict, markdown: str) -> None:
    """``<stem>.json`` and ``<stem>.md``, each replaced atomically (safe to rewrite mid-run)."""
    write_json(stem.with_suffix(".json"), document)
    write_atomic(stem.with_suffix(".md"), markdown)


# -- golden cases --------------------------------------------------------------------------------

GOLDEN_DIR = ROOT / "tests" / "fixtures" / "golden"


def golden_psnr(weights: Path, device: str, precision: str, cases=("P1", "P2"),
                max_frames: int | None = None) -> list[dict]:
    """Per golden case: PSNR of ``precision``'s RGB frames against fp32's, frame by frame, on
    ``device`` (the cases' frames and reference from tests/fixtures/golden, the first
    ``max_frames`` of them if given; both runs use the same weights). Returns
    ``[{"case", "frames", "min_db", "mean_db", "per_frame_db"}]``."""
    from PIL import Image

    from colorize.engine import EngineConfig, build_colorizer

    rows = []
    for name in cases:
        root = GOLDEN_DIR / name
        knobs = json.loads((root / "case.json").read_text())["knobs"]
        frames = [np.array(Image.open(path).convert("RGB"))
                  for path in sorted((root / "frames").glob("*.png"))[:max_frames]]
        reference = np.array(Image.open(root / "ref.png").convert("RGB"))
        outputs = {}
        for run_precision in ("fp32", precision):
            colorizer = build_colorizer(EngineConfig(
                weights=weights, device=device, precision=run_precision,
                reference_is_first_frame=knobs["path"] == "step"))
            outputs[run_precision] = list(colorizer.colorize(iter(frames), reference))
        per_frame = [psnr(a, b, 255.0) for a, b in zip(outputs["fp32"], outputs[precision])]
        finite = [value for value in per_frame if math.isfinite(value)]
        rows.append({"case": name, "frames": len(per_frame), "min_db": min(per_frame),
                     "mean_db": sum(finite) / len(finite) if finite else math.inf,
                     "per_frame_db": per_frame})
    return rows
