"""Device choice and the memory budget a run may use."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import torch

from colorize.errors import DeviceUnavailableError

logger = logging.getLogger(__name__)


def choose_device(requested: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit choice must be available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "--device cuda: no CUDA GPU is usable here (driver or CUDA build of torch missing); "
            "use --device cpu or --device auto")
    if requested == "mps" and not _mps_available():
        raise DeviceUnavailableError("--device mps: Apple Metal is not available; use --device cpu")
    if requested not in ("cuda", "mps", "cpu"):
        raise DeviceUnavailableError(f"unknown device {requested!r}; use auto, cuda, mps or cpu")
    return torch.device(requested)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


# /proc/cpuinfo flags of native bfloat16 arithmetic, best first, with the name --plan prints.
_BF16_FLAGS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"))


def bf16_feature(flags: set[str]) -> str | None:
    """The native bfloat16 feature among a CPU's flags (AMX-BF16, AVX512-BF16), or None."""
    for flag, name in _BF16_FLAGS:
        if flag in flags:
            return name
    return None


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor listed in ``/proc/cpuinfo``'s text."""
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_native_bf16(platform: str | None = None) -> str | None:
    """Whether this CPU computes bfloat16 natively, read from ``/proc/cpuinfo`` on Linux.

    Elsewhere (macOS, Windows) the answer is None, so ``auto`` stays at fp32 there: emulated
    bfloat16 is slower than fp32.
    """
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return bf16_feature(cpu_flags(handle.read()))
    except OSError:
        return None


def configure_cpu_threads() -> int:
    """Use the physical cores for intra-op work unless the user set OMP/MKL threads themselves."""
    if "OMP_NUM_THREADS" in os.environ or "MKL_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    try:
        import psutil

        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except Exception:  # psutil cannot always read the topology (containers)
        cores = os.cpu_count() or 1
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    threads = max(1, min(cores, affinity))
    torch.set_num_threads(threads)
    return threads


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30


def is_glibc(platform: str | None = None) -> bool:
    """Whether this process runs on glibc, the only C library with these ``mallopt`` knobs.

    Windows has no ``CDLL(None)`` at all (it raises TypeError), macOS and musl have no such
    thresholds; ``CS_GNU_LIBC_VERSION`` is answered by glibc only.
    """
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):
        return False


def keep_freed_host_memory() -> bool:
    """Let glibc keep freed blocks for reuse instead of handing them back to the system.

    A CPU frame allocates and frees hundreds of activation tensors of several MB each. By
    default glibc serves big blocks with fresh ``mmap`` pages and trims freed heap memory, so
    every frame pays page faults and zero-filling on the same few hundred MB again: 12% of a
    448x448 frame on the 2-core reference machine. Raising the mmap and trim thresholds (both
    needed: either alone is slower than the defaults) keeps the pages; peak resident memory is
    unchanged, since the same blocks are reused every frame. Process-wide, so it is done by
    :func:`colorize.engine.build_colorizer` for CPU runs only; ``COLORIZE_MALLOC_TUNING=0``
    turns it off. Returns whether it was applied (False off glibc: Windows, macOS, musl).
    """
    if os.environ.get("COLORIZE_MALLOC_TUNING", "1") == "0" or not is_glibc():
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no process-wide symbol table to read
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    logger.debug("glibc malloc thresholds raised to %d bytes: %s", _KEEP_BYTES, applied)
    return applied


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes this run may spend on the device (and on the host for CPU runs)."""

    free_bytes: int
    total_bytes: int
    source: str


def memory_budget(device: torch.device, limit_bytes: int | None = None) -> MemoryBudget:
    """Free memory on ``device``, optionally capped by ``limit_bytes``."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        source = "torch.cuda.mem_get_info"
    else:
        import psutil

        vm = psutil.virtual_memory()
        free, total = vm.available, vm.total
        source = "psutil (host RAM)"
    if limit_bytes is not None:
        free = min(free, limit_bytes)
        total = min(total, limit_bytes)
    return MemoryBudget(free_bytes=int(free), total_bytes=int(total), source=source)


def is_out_of_memory(error: BaseException) -> bool:
    """True for allocator failures on any backend (CUDA, MPS, CPU)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(error, (RuntimeError, MemoryError)):
        text = str(error).lower()
        return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate" in text \
            or "failed to allocate" in text
    return False


def release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
