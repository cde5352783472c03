"""GPU mode of bench_colorize: resolutions x precisions x emulated card sizes.

A cap of X GiB stands for a card with X GiB in total: the caching allocator is limited with
``torch.cuda.set_per_process_memory_fraction`` to X minus the memory used outside it (CUDA
context, other processes), and the engine's planner is told what is still free under that limit
(``EngineConfig.memory_limit_bytes``). Since the allocator cap does not cover the context,
``mem_get_info`` is sampled throughout to report the most memory the card really had in use.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from colorize_bench_common import (
    GIB, MIB, FramePool, PeakSampler, colourful_reference, environment, load_average,
    markdown_table, matplotlib_pyplot, psnr_frames, save_figure, today, write_atomic, write_json,
)

logger = logging.getLogger("bench_colorize")

# (label, height, width); labels are width x height like the issue's.
GPU_RESOLUTIONS = [
    ("480p", 480, 854), ("512x768", 768, 512), ("960x536", 536, 960),
    ("720p", 720, 1280), ("1080p", 1080, 1920), ("4K", 2160, 3840),
]
GPU_CAPS_GB = [6, 8, 12, 16, 24, None]            # None: the full card
GPU_ANCHORS = [
    "paper (960x536, RTX A6000): 0.07 s/frame (~14 fps), 1.9 GB peak, model only",
    "CMNET2 (RTX 5070 Ti 16 GB): 2.63 fps at 960x730, 5.80 fps at 512 px with chroma transfer",
    "design target: 3-5 fps at 512x768 on an RTX 3070 in FP16, 6-8 GB for 50 frames",
    "goals: 960x536 FP16 on an H100 >= 60 fps end to end and <= 1.5 GB peak; 1080p >= 25 fps; "
    "4K finishes under a 16 GB cap; FP16 PSNR >= 45 dB vs fp32",
]


@dataclass
class GpuSettings:
    resolutions: list[tuple[str, int, int]]
    precisions: list[str]
    caps_gb: list[float | None]
    frames: int
    warmup_frames: int
    frames_for_psnr: int
    out: Path
    device: str = "cuda"
    plot: bool = True
    chunk_size: int | None = None       # None: the engine's planner decides
    suffix: str = ""                    # added to the result file names


def _gpu_measure(colorizer, pool: FramePool, reference: np.ndarray, settings: GpuSettings,
                 device, keep_rgb: list | None) -> dict:
    """One configuration: a warm-up video, then a timed ``predict`` and a timed ``colorize``."""
    import torch

    for _ in colorizer.predict(pool.video(settings.warmup_frames), reference):
        pass
    torch.cuda.synchronize(device)
    row: dict = {}
    with PeakSampler(interval=0.01, cuda_device=device) as sampler:
        torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        count = 0
        for _ in colorizer.predict(pool.video(settings.frames), reference):
            count += 1
        torch.cuda.synchronize(device)
        model_s = time.perf_counter() - started
        plan = colorizer.last_plan
        events = list(colorizer.events)
        row.update(model_fps=count / model_s, model_frames=count,
                   model_peak_allocated_gib=torch.cuda.max_memory_allocated(device) / GIB,
                   model_peak_reserved_gib=torch.cuda.max_memory_reserved(device) / GIB)

        torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        first_frame_s = None
        count = 0
        for rgb in colorizer.colorize(pool.video(settings.frames), reference):
            if first_frame_s is None:
                first_frame_s = time.perf_counter() - started
            if keep_rgb is not None and len(keep_rgb) < settings.frames_for_psnr:
                keep_rgb.append(rgb)
            count += 1
        torch.cuda.synchronize(device)
        e2e_s = time.perf_counter() - started
        events += [e for e in colorizer.events if e not in events]
        row.update(e2e_fps=count / e2e_s, e2e_frames=count, e2e_first_frame_s=first_frame_s,
                   e2e_peak_allocated_gib=torch.cuda.max_memory_allocated(device) / GIB,
                   e2e_peak_reserved_gib=torch.cuda.max_memory_reserved(device) / GIB)
    total = torch.cuda.mem_get_info(device)[1]
    row.update(
        status="ok",
        chunk_size=plan.chunk_size,
        processing_size=f"{plan.processing_size[1]}x{plan.processing_size[0]}",
        plan_estimated_peak_gib=plan.estimated_peak_bytes / GIB,
        plan_budget_gib=plan.budget_bytes / GIB,
        plan_note=plan.reason,
        events=events,
        min_device_free_gib=sampler.min_free / GIB if sampler.min_free is not None else None,
        max_device_used_gib=(None if sampler.min_free is None
                             else (total - sampler.min_free) / GIB),
        peak_rss_mb=sampler.max_rss / MIB,
    )
    return row


def _cleanup_cuda() -> None:
    import torch

    gc.collect()
    torch.cuda.empty_cache()


def run_gpu_benchmark(weights: Path, weights_label: str, settings: GpuSettings) -> dict:
    """The GPU table; results are rewritten after every configuration so a cut run keeps them."""
    import torch

    from colorize.engine import EngineConfig, build_colorizer

    device = torch.device(settings.device)
    torch.zeros(1, device=device)                       # create the CUDA context first
    torch.cuda.synchronize(device)
    free, total = torch.cuda.mem_get_info(device)
    # Memory used on the card by anything but our allocator: the CUDA context, other processes.
    outside_allocator = total - free - torch.cuda.memory_reserved(device)
    name = torch.cuda.get_device_name(device)
    document = {
        "benchmark": "colorize-gpu",
        "environment": {**environment(name), "cuda": torch.version.cuda,
                        "cudnn": torch.backends.cudnn.version(), "total_memory_gib": total / GIB,
                        "memory_outside_allocator_gib": outside_allocator / GIB},
        "weights": weights_label,
        "settings": {"frames": settings.frames, "warmup_frames": settings.warmup_frames,
                     "resolutions": [r[0] for r in settings.resolutions],
                     "precisions": settings.precisions,
                     "chunk_size": settings.chunk_size or "planner",
                     "caps_gb": [c if c is not None else "full" for c in settings.caps_gb]},
        "anchors": GPU_ANCHORS,
        "emulation": (
            "A cap of X GiB emulates a card with X GiB in total: the caching allocator is limited "
            "with torch.cuda.set_per_process_memory_fraction((X - memory outside the allocator) / "
            "total), and the engine's planner is told the memory still free under that limit "
            "(EngineConfig.memory_limit_bytes). max_device_used_gib comes from mem_get_info "
            "sampled every 10 ms (the cap does not cover the CUDA context); headroom = X - that."),
        "startup_s": {},
        "results": [],
    }
    reference_rgb: dict[str, list[np.ndarray]] = {}
    stem = settings.out / f"colorize_gpu_{today()}{settings.suffix}"
    for precision in settings.precisions:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        started = time.perf_counter()
        colorizer = build_colorizer(EngineConfig(weights=weights, device=settings.device,
                                                 precision=precision,
                                                 chunk_size=settings.chunk_size))
        torch.cuda.synchronize(device)
        document["startup_s"][precision] = time.perf_counter() - started
        base_config = colorizer.config
        for cap_gb in settings.caps_gb:
            cap_label = "full" if cap_gb is None else f"{cap_gb:g} GB"
            if cap_gb is not None and cap_gb * GIB > total:
                for label, height, width in settings.resolutions:
                    document["results"].append({"resolution": label, "size": f"{width}x{height}",
                                                "precision": precision,
                                                "cap": cap_label, "status": "skipped",
                                                "message": "cap larger than this card"})
                continue
            _cleanup_cuda()
            if cap_gb is None:
                torch.cuda.set_per_process_memory_fraction(1.0, device)
                colorizer.config = replace(base_config, memory_limit_bytes=None)
            else:
                allocator_limit = cap_gb * GIB - outside_allocator
                fraction = max(0.0, min(1.0, allocator_limit / total))
                torch.cuda.set_per_process_memory_fraction(fraction, device)
                free_under_cap = int(max(0, allocator_limit - torch.cuda.memory_reserved(device)))
                colorizer.config = replace(base_config, memory_limit_bytes=free_under_cap)
            for label, height, width in settings.resolutions:
                logger.info("%s %s cap %s", label, precision, cap_label)
                row = {"resolution": label, "size": f"{width}x{height}", "precision": precision,
                       "cap": cap_label}
                keep = None
                if cap_gb is None and settings.frames_for_psnr > 0:
                    keep = reference_rgb.setdefault(label, []) if precision == "fp32" else []
                try:
                    pool = FramePool(height, width, distinct=8)
                    reference = colourful_reference(height, width)
                    row.update(_gpu_measure(colorizer, pool, reference, settings, device, keep))
                    if cap_gb is not None:
                        row["headroom_under_cap_gib"] = cap_gb - row["max_device_used_gib"]
                    if precision != "fp32" and keep and reference_rgb.get(label):
                        row["psnr_vs_fp32_rgb_db"] = psnr_frames(reference_rgb[label], keep, 255.0)
                except Exception as error:  # one failed configuration must not stop the table
                    first_line = (str(error).strip().splitlines() or [""])[0]
                    row.update(status="failed",
                               message=f"{type(error).__name__}: {first_line}"[:300],
                               events=list(getattr(colorizer, "events", [])))
                    plan = getattr(colorizer, "last_plan", None)
                    if plan is not None and plan.frame_size == (height, width):
                        row.update(chunk_size=plan.chunk_size,
                                   processing_size=f"{plan.processing_size[1]}x"
                                                   f"{plan.processing_size[0]}")
                finally:
                    pool = reference = keep = None
                    _cleanup_cuda()
                document["results"].append(row)
                _write_gpu_outputs(document, stem, final=False, plot=False)
        del colorizer, base_config
        _cleanup_cuda()
    torch.cuda.set_per_process_memory_fraction(1.0, device)
    document["load_average_end"] = load_average()
    _write_gpu_outputs(document, stem, final=True, plot=settings.plot)
    return document


def _larger(row: dict, *keys: str) -> float | None:
    values = [row[key] for key in keys if row.get(key) is not None]
    return max(values) if values else None


def gpu_markdown(document: dict) -> str:
    env = document["environment"]
    lines = [
        f"# colorize on GPU ({env['date'][:10]})",
        "",
        f"{env['device']} ({env['total_memory_gib']:.1f} GiB, "
        f"{env['memory_outside_allocator_gib']:.2f} GiB outside the allocator), "
        f"CUDA {env['cuda']}, "
        f"torch {env['torch']}, Python {env['python']}, code {env['git_commit']}"
        + (" with uncommitted changes in colorize/"
           if env["colorize_has_uncommitted_changes"] else "")
        + f". Weights: {document['weights']}. {document['settings']['frames']} frames per timed "
        "video after a warm-up video.",
        "",
        document["emulation"],
        "",
        "model fps: `predict` (L and ab tensors on the device); end-to-end fps: `colorize` to RGB "
        "uint8 arrays on the host (no video encoding). Peaks in GiB from "
        "torch.cuda.max_memory_allocated / max_memory_reserved.",
        "",
    ]
    headers = ["resolution", "precision", "cap", "status", "processing", "chunk", "model fps",
               "e2e fps", "peak alloc", "peak reserved", "max used on card", "headroom",
               "PSNR vs fp32", "engine did / error"]
    rows = []
    for r in document["results"]:
        peak_alloc = _larger(r, "model_peak_allocated_gib", "e2e_peak_allocated_gib")
        peak_res = _larger(r, "model_peak_reserved_gib", "e2e_peak_reserved_gib")
        note = r.get("message") or "; ".join(r.get("events") or []) or r.get("plan_note") or ""
        rows.append([r.get("size", r["resolution"]) + f" ({r['resolution']})", r["precision"],
                     r["cap"], r["status"], r.get("processing_size"), r.get("chunk_size"),
                     r.get("model_fps"),
                     r.get("e2e_fps"), peak_alloc, peak_res, r.get("max_device_used_gib"),
                     r.get("headroom_under_cap_gib"), r.get("psnr_vs_fp32_rgb_db"), note])
    lines.append(markdown_table(headers, rows))
    lines += ["", "Anchors:", *[f"- {a}" for a in document["anchors"]]]
    startup = ", ".join(f"{k} {v:.2f} s" for k, v in document["startup_s"].items())
    lines += ["", f"Model build (load + to device): {startup}.",
              f"Load average at start {env['load_average_start']}, at end "
              f"{document.get('load_average_end', 'n/a (run in progress)')}."]
    return "\n".join(lines) + "\n"


def _gpu_plot(document: dict, path: Path) -> None:
    pyplot = matplotlib_pyplot()
    if pyplot is None:
        return
    ok = [r for r in document["results"] if r["status"] == "ok"]
    order = document["settings"]["resolutions"]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    for precision in document["settings"]["precisions"]:
        full = sorted((r for r in ok if r["precision"] == precision and r["cap"] == "full"),
                      key=lambda r: order.index(r["resolution"]))
        if full:
            labels = [r["resolution"] for r in full]
            left.plot(labels, [r["e2e_fps"] for r in full], marker="o",
                      label=f"{precision} end to end")
            left.plot(labels, [r["model_fps"] for r in full], marker="x", linestyle="--",
                      label=f"{precision} model only")
        for cap in sorted({r["cap"] for r in ok if r["precision"] == precision}):
            rows = sorted((r for r in ok if r["precision"] == precision and r["cap"] == cap),
                          key=lambda r: order.index(r["resolution"]))
            right.plot([r["resolution"] for r in rows],
                       [_larger(r, "model_peak_reserved_gib", "e2e_peak_reserved_gib")
                        for r in rows],
                       marker="o", label=f"{precision}, cap {cap}")
    left.set_ylabel("frames per second (full card)")
    left.set_yscale("log")
    left.legend(fontsize=8)
    right.set_ylabel("peak reserved GiB")
    right.legend(fontsize=7)
    figure.suptitle(f"colorize on {document['environment']['device']}")
    save_figure(pyplot, figure, path)


def _write_gpu_outputs(document: dict, stem: Path, final: bool, plot: bool) -> None:
    write_json(stem.with_suffix(".json"), document)
    write_atomic(stem.with_suffix(".md"), gpu_markdown(document))
    if final and plot:
        _gpu_plot(document, stem.with_suffix(".png"))
