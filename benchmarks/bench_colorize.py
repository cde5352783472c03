"""Speed and memory of the colorize engine, on a GPU table or against a frame-by-frame path on CPU.

GPU mode (CUDA): for each resolution, precision and emulated GPU size it measures model fps
(``predict`` only), end-to-end fps (``colorize`` to RGB uint8 arrays on the host), peak allocated
and reserved memory, the most device memory in use (``mem_get_info`` sampled), the chunk and
processing size the planner chose and what the engine had to do (out-of-memory back-off).

CPU mode: our engine (chunked key encoding, background decode/compute) against a plain
frame-by-frame loop of our own (per frame: key encoding with batch 1, then one propagation step;
no threads, no chunking, like the official flow), both fp32 with the same numbers, plus the opt-in
bf16 engine and its PSNR against our fp32 output.

Results go to ``benchmarks/results/colorize_{cpu,gpu}_<date>.{json,md,png}``.

    python benchmarks/bench_colorize.py                      # CPU or GPU, whichever is here
    python benchmarks/bench_colorize.py --device cpu --frames 12 [--full]
    python benchmarks/bench_colorize.py --device cuda --resolutions 960x536,1080p --caps 8,full
    python benchmarks/bench_colorize.py --quick              # a small subset, for a first look
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    GIB, MIB, RESULTS_DIR, FramePool, PeakSampler, Stopwatch, colourful_reference, current_rss,
    environment, load_average, markdown_table, matplotlib_pyplot, process_max_rss, psnr,
    release_host_memory, save_figure, today, weights_file, write_atomic, write_json,
)

logger = logging.getLogger("bench_colorize")

# (label, height, width); labels are width x height like the issue's.
GPU_RESOLUTIONS = [
    ("480p", 480, 854), ("512x768", 768, 512), ("960x536", 536, 960),
    ("720p", 720, 1280), ("1080p", 1080, 1920), ("4K", 2160, 3840),
]
GPU_CAPS_GB = [6, 8, 12, 16, 24, None]            # None: the full card
CPU_SIZES = [("224x224", 224, 224), ("448x448", 448, 448)]
CPU_FULL_SIZES = CPU_SIZES + [("864x480", 480, 864)]

# Anchors from issue 4 (s/frame on this project's 2-core CPU machine; fps / GB on GPUs).
OFFICIAL_CPU_S_PER_FRAME = {"224x224": 0.735, "448x448": 2.77, "864x480": 8.12}
CPU_GOALS = {"fp32_448_s_per_frame": 2.1, "bf16_448_s_per_frame": 1.4, "bf16_psnr_db": 40.0,
             "ab_max_abs_vs_frame_by_frame": 1e-3}
GPU_ANCHORS = [
    "paper (960x536, RTX A6000): 0.07 s/frame (~14 fps), 1.9 GB peak, model only",
    "CMNET2 (RTX 5070 Ti 16 GB): 2.63 fps at 960x730, 5.80 fps at 512 px with chroma transfer",
    "design target: 3-5 fps at 512x768 on an RTX 3070 in FP16, 6-8 GB for 50 frames",
    "goals: 960x536 FP16 on an H100 >= 60 fps end to end and <= 1.5 GB peak; 1080p >= 25 fps; "
    "4K finishes under a 16 GB cap; FP16 PSNR >= 45 dB vs fp32",
]


# -- the frame-by-frame path ---------------------------------------------------------------------

def frame_by_frame_predict(network, frames: Iterable[np.ndarray], reference: np.ndarray,
                           memory_settings) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:
    """The plain loop: per frame, LAB conversion, key encoding of that frame alone, one step.

    Same stages and the same numbers as the engine's fp32 path (reference as a separate exemplar),
    but nothing is batched, prefetched or overlapped. Yields the frame's normalised L (1, H, W)
    and the predicted ab (2, H, W), like ``ColorMNetColorizer.predict``. CPU, fp32 only.
    """
    import torch

    from colorize.color import rgb_to_normalized_lab
    from colorize.memory import MemoryConfig
    from colorize.propagation import Padding, ScheduleConfig, VideoPropagator

    def to_lab(rgb: np.ndarray) -> torch.Tensor:
        return rgb_to_normalized_lab(torch.from_numpy(np.array(rgb)).permute(2, 0, 1))[None]

    s = memory_settings
    propagator = VideoPropagator(
        network,
        MemoryConfig(top_k=s.top_k, max_mid_term_frames=s.max_mid_term_frames,
                     min_mid_term_frames=s.min_mid_term_frames, num_prototypes=s.num_prototypes,
                     max_long_term_elements=s.max_long_term_elements,
                     enable_long_term=s.enable_long_term),
        ScheduleConfig(mem_every=s.mem_every, deep_update_every=s.deep_update_every),
    )
    iterator = iter(frames)
    current = next(iterator, None)
    if current is None:
        return
    padding = Padding.for_size(current.shape[0], current.shape[1], network.config.pad_multiple)
    with torch.inference_mode():
        reference_in = padding.apply(to_lab(reference))
        reference_ab = reference_in[:, 1:]
        reference_image = reference_in[:, :1].expand(-1, 3, -1, -1)
        index = 0
        while current is not None:
            following = next(iterator, None)
            is_last = following is None
            luminance = to_lab(current)[:, :1]
            image = padding.apply(luminance).expand(-1, 3, -1, -1)
            if index == 0:
                features = network.encode_key(image)
                exemplar = network.encode_key(reference_image)
                ab = propagator.start_with_exemplar(image, features, reference_image, exemplar,
                                                    reference_ab, is_last)
            else:
                # Like the official flow: shrinkage only for frames that will be memorised.
                features = network.encode_key(image,
                                              need_shrinkage=propagator.needs_shrinkage(is_last))
                ab = propagator.step(image, features, is_last)
            yield luminance[0], padding.remove(ab).float()[0]
            current = following
            index += 1


# -- CPU mode ------------------------------------------------------------------------------------

@dataclass
class CpuSettings:
    sizes: list[tuple[str, int, int]]
    timed_frames: int
    warmup_frames: int
    bf16: bool
    out: Path
    plot: bool = True


def _first_timed_frame(warmup: int, chunk: int) -> int:
    """Index of the first timed frame: the warm-up rounded up to whole key-encoding chunks, so
    that the timed window holds whole chunks (their encoding and their steps)."""
    return max(1, math.ceil(max(1, warmup) / chunk) * chunk)


def _timed_cpu_run(label: str, produce: Callable[[], Iterator], first_timed: int,
                   keep: Callable[[int, object], float]) -> dict:
    """Consume ``produce()`` and time it. ``keep`` stores what later comparisons need and returns
    the seconds it spent on work that belongs to the path (RGB conversion of the plain loop)."""
    release_host_memory()
    baseline = current_rss()
    extra: list[float] = []
    with PeakSampler(interval=0.05) as sampler:
        watch = Stopwatch()
        for index, item in enumerate(produce()):
            extra.append(keep(index, item))
            watch.tick()
    stamps = watch.stamps
    if len(stamps) <= first_timed:
        raise RuntimeError(f"{label}: only {len(stamps)} frames came out, need > {first_timed}")
    timed = len(stamps) - first_timed
    window = stamps[-1] - stamps[first_timed - 1]
    extra_in_window = sum(extra[first_timed:])
    return {
        "path": label,
        "frames": len(stamps),
        "timed_frames": timed,
        "s_per_frame": window / timed,
        "s_per_frame_without_rgb": (window - extra_in_window) / timed,
        "first_frame_s": stamps[0],
        "total_s": stamps[-1],
        "peak_rss_mb": sampler.max_rss / MIB,
        "rss_before_mb": baseline / MIB,
    }


def _engine_runs(colorizer, size: tuple[str, int, int], reference: np.ndarray, pool: FramePool,
                 settings: CpuSettings, tag: str) -> tuple[list[dict], list[np.ndarray], list[np.ndarray]]:
    """Model-only (predict) and end-to-end (colorize) runs of the engine; returns their outputs."""
    label, height, width = size
    chunk = colorizer.plan((height, width)).chunk_size
    first_timed = _first_timed_frame(settings.warmup_frames, chunk)
    total = first_timed + settings.timed_frames
    ab_outputs: list[np.ndarray] = []
    rgb_outputs: list[np.ndarray] = []

    def keep_ab(_: int, item) -> float:
        ab_outputs.append(item[1].float().numpy().copy())
        return 0.0

    def keep_rgb(_: int, item) -> float:
        rgb_outputs.append(item)
        return 0.0

    rows = []
    for mode, produce, keep in (
        ("predict", lambda: colorizer.predict(pool.video(total), reference), keep_ab),
        ("colorize", lambda: colorizer.colorize(pool.video(total), reference), keep_rgb),
    ):
        logger.info("%s %s engine %s: %d frames (%d timed)", label, tag, mode, total,
                    settings.timed_frames)
        row = _timed_cpu_run(f"engine {tag} {mode}", produce, first_timed, keep)
        plan = colorizer.last_plan
        row.update(size=label, precision=tag, mode=mode, chunk_size=plan.chunk_size,
                   processing_size=f"{plan.processing_size[1]}x{plan.processing_size[0]}",
                   events=list(colorizer.events))
        rows.append(row)
    return rows, ab_outputs, rgb_outputs


def _frame_by_frame_run(network, memory_settings, size, reference, pool, settings) -> tuple[dict, list, list]:
    from colorize.color import assemble_rgb

    label, height, width = size
    first_timed = _first_timed_frame(settings.warmup_frames, 1)
    total = first_timed + settings.timed_frames
    ab_outputs: list[np.ndarray] = []
    rgb_outputs: list[np.ndarray] = []

    def keep(_: int, item) -> float:
        # The RGB conversion is part of this path's end-to-end time (the official flow does it
        # per frame too); it is timed so that the model-only figure can leave it out.
        started = time.perf_counter()
        luminance, ab = item
        rgb_outputs.append(assemble_rgb(luminance, ab).permute(1, 2, 0).numpy())
        spent = time.perf_counter() - started
        ab_outputs.append(ab.numpy().copy())
        return spent

    logger.info("%s frame-by-frame: %d frames (%d timed)", label, total, settings.timed_frames)
    row = _timed_cpu_run("frame-by-frame fp32",
                         lambda: frame_by_frame_predict(network, pool.video(total), reference,
                                                        memory_settings),
                         first_timed, keep)
    row.update(size=label, precision="fp32", mode="frame-by-frame", chunk_size=1,
               processing_size=f"{width}x{height}", events=[])
    return row, ab_outputs, rgb_outputs


def _max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    count = min(len(a), len(b))
    return max(float(np.abs(a[i].astype(np.float64) - b[i].astype(np.float64)).max())
               for i in range(count))


def _psnr_frames(reference: list[np.ndarray], other: list[np.ndarray], peak: float) -> float:
    count = min(len(reference), len(other))
    return psnr(np.stack(reference[:count]), np.stack(other[:count]), peak)


def run_cpu_benchmark(weights: Path, weights_label: str, settings: CpuSettings) -> dict:
    """All CPU measurements; writes JSON/markdown/PNG under ``settings.out``; returns the JSON."""
    import torch

    from colorize.engine import EngineConfig, build_colorizer

    started = time.perf_counter()
    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32"))
    build_s = time.perf_counter() - started
    document = {
        "benchmark": "colorize-cpu",
        "environment": environment("cpu"),
        "weights": weights_label,
        "settings": {"timed_frames": settings.timed_frames, "warmup_frames": settings.warmup_frames,
                     "sizes": [s[0] for s in settings.sizes], "bf16": settings.bf16,
                     "memory": asdict(colorizer.config.memory)},
        "anchors": {"official_s_per_frame": OFFICIAL_CPU_S_PER_FRAME, "goals": CPU_GOALS},
        "startup_s": {"fp32": build_s},
        "runs": [],
        "comparisons": {},
    }
    ab_fp32: dict[str, list[np.ndarray]] = {}
    rgb_fp32: dict[str, list[np.ndarray]] = {}
    for size in settings.sizes:
        label, height, width = size
        pool = FramePool(height, width, distinct=16)
        reference = colourful_reference(height, width)
        rows, ab_engine, rgb_engine = _engine_runs(colorizer, size, reference, pool, settings, "fp32")
        fbf_row, ab_fbf, rgb_fbf = _frame_by_frame_run(colorizer.network, colorizer.config.memory,
                                                       size, reference, pool, settings)
        document["runs"] += rows + [fbf_row]
        document["comparisons"][label] = {
            "engine_fp32_vs_frame_by_frame_ab_max_abs": _max_abs(ab_engine, ab_fbf),
            "engine_fp32_vs_frame_by_frame_rgb_max_abs": _max_abs(rgb_engine, rgb_fbf),
            "frames_compared": min(len(ab_engine), len(ab_fbf)),
        }
        ab_fp32[label], rgb_fp32[label] = ab_engine, rgb_engine
        _write_cpu_outputs(document, settings)
    del colorizer
    release_host_memory()

    if settings.bf16:
        started = time.perf_counter()
        colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="bf16"))
        document["startup_s"]["bf16"] = time.perf_counter() - started
        for size in settings.sizes:
            label, height, width = size
            pool = FramePool(height, width, distinct=16)
            reference = colourful_reference(height, width)
            rows, ab_bf16, rgb_bf16 = _engine_runs(colorizer, size, reference, pool, settings, "bf16")
            document["runs"] += rows
            document["comparisons"][label].update({
                "bf16_vs_fp32_ab_psnr_db": _psnr_frames(ab_fp32[label], ab_bf16, 2.0),
                "bf16_vs_fp32_ab_max_abs": _max_abs(ab_fp32[label], ab_bf16),
                "bf16_vs_fp32_rgb_psnr_db": _psnr_frames(rgb_fp32[label], rgb_bf16, 255.0),
            })
            _write_cpu_outputs(document, settings)
        del colorizer
        release_host_memory()

    document["torch_threads"] = torch.get_num_threads()
    document["process_max_rss_mb"] = process_max_rss() / MIB
    document["load_average_end"] = load_average()
    _write_cpu_outputs(document, settings, final=True)
    return document


def _cpu_run(document: dict, size: str, precision: str, mode: str) -> dict | None:
    for row in document["runs"]:
        if row["size"] == size and row["precision"] == precision and row["mode"] == mode:
            return row
    return None


def _cpu_markdown(document: dict) -> str:
    env = document["environment"]
    lines = [
        f"# colorize on CPU: engine vs frame-by-frame ({env['date'][:10]})",
        "",
        f"{env['cpu']}, {env['logical_cpus']} logical CPUs, torch {env['torch']} "
        f"({document.get('torch_threads', env['torch_threads'])} threads), Python {env['python']}, "
        f"{env['platform']}. Code {env['git_commit']}"
        + (" with uncommitted changes in colorize/" if env["colorize_has_uncommitted_changes"] else "")
        + f". Weights: {document['weights']}.",
        f"Load average (1, 5, 15 min) at start {env['load_average_start']}, "
        f"at end {document.get('load_average_end', 'n/a (run in progress)')}.",
        f"Each figure: {document['settings']['timed_frames']} timed frames after "
        f"{document['settings']['warmup_frames']} warm-up frames (rounded up to whole "
        "key-encoding chunks), one synthetic video per run, reference as a separate exemplar.",
        "",
        "s/frame end to end: `colorize` to RGB uint8 arrays (engine), or the plain loop including "
        "its per-frame RGB conversion; model only: `predict` (engine), or the loop without the RGB "
        "conversion. Peak RSS: sampled every 50 ms during the run (the process holds the model).",
        "",
    ]
    headers = ["size", "path", "s/frame end to end", "s/frame model only", "chunk",
               "first frame s", "peak RSS MB", "events"]
    rows = []
    for size in document["settings"]["sizes"]:
        fbf = _cpu_run(document, size, "fp32", "frame-by-frame")
        if fbf:
            rows.append([size, "frame-by-frame fp32", fbf["s_per_frame"],
                         fbf["s_per_frame_without_rgb"], 1, fbf["first_frame_s"],
                         round(fbf["peak_rss_mb"]), ""])
        for precision in ("fp32", "bf16"):
            e2e = _cpu_run(document, size, precision, "colorize")
            model = _cpu_run(document, size, precision, "predict")
            if e2e or model:
                any_row = e2e or model
                peak = max(r["peak_rss_mb"] for r in (e2e, model) if r)
                events = "; ".join(sorted(set((e2e or {}).get("events", []) + (model or {}).get("events", []))))
                rows.append([size, f"engine {precision}", e2e and e2e["s_per_frame"],
                             model and model["s_per_frame"], any_row["chunk_size"],
                             e2e and e2e["first_frame_s"], round(peak), events])
    lines.append(markdown_table(headers, rows))
    lines += ["", "## Against the anchors and goals", ""]
    headers = ["size", "official s/frame", "frame-by-frame", "engine fp32", "speed-up vs plain loop",
               "official / engine fp32", "engine bf16", "ab max abs fp32 engine vs loop",
               "bf16 PSNR RGB dB", "bf16 PSNR ab dB"]
    rows = []
    for size in document["settings"]["sizes"]:
        fbf = _cpu_run(document, size, "fp32", "frame-by-frame")
        e2e = _cpu_run(document, size, "fp32", "colorize")
        bf16 = _cpu_run(document, size, "bf16", "colorize")
        comparison = document["comparisons"].get(size, {})
        official = OFFICIAL_CPU_S_PER_FRAME.get(size)
        rows.append([
            size, official, fbf and fbf["s_per_frame"], e2e and e2e["s_per_frame"],
            f"{fbf['s_per_frame'] / e2e['s_per_frame']:.2f}x" if fbf and e2e else None,
            f"{official / e2e['s_per_frame']:.2f}x" if official and e2e else None,
            bf16 and bf16["s_per_frame"],
            comparison.get("engine_fp32_vs_frame_by_frame_ab_max_abs"),
            comparison.get("bf16_vs_fp32_rgb_psnr_db"), comparison.get("bf16_vs_fp32_ab_psnr_db"),
        ])
    lines.append(markdown_table(headers, rows))
    goals = CPU_GOALS
    lines += [
        "",
        f"Goals (issue 4, 448x448 on the 2-core machine): fp32 end to end <= "
        f"{goals['fp32_448_s_per_frame']} s/frame with ab within {goals['ab_max_abs_vs_frame_by_frame']:g} "
        f"of the plain loop; bf16 <= {goals['bf16_448_s_per_frame']} s/frame with PSNR >= "
        f"{goals['bf16_psnr_db']:g} dB against our fp32 output.",
        "PSNR RGB: over the uint8 RGB frames (peak 255); PSNR ab: over the predicted ab in the "
        "network's [-1, 1] scale (peak-to-peak 2). Synthetic weights: bf16 error on the trained "
        "checkpoint may differ.",
    ]
    verdicts = _cpu_verdicts(document)
    if verdicts:
        lines += ["", *[f"- {v}" for v in verdicts]]
    startup = ", ".join(f"{k} {v:.2f} s" for k, v in document["startup_s"].items())
    lines += ["", f"Model build (load + construct): {startup}."]
    return "\n".join(lines) + "\n"


def _cpu_verdicts(document: dict) -> list[str]:
    verdicts = []
    e2e = _cpu_run(document, "448x448", "fp32", "colorize")
    comparison = document["comparisons"].get("448x448", {})
    if e2e:
        goal = CPU_GOALS["fp32_448_s_per_frame"]
        verdicts.append(f"fp32 448x448: {e2e['s_per_frame']:.2f} s/frame, goal <= {goal} "
                        f"({'met' if e2e['s_per_frame'] <= goal else 'not met'})")
    for size, comp in document["comparisons"].items():
        value = comp.get("engine_fp32_vs_frame_by_frame_ab_max_abs")
        if value is not None:
            ok = value <= CPU_GOALS["ab_max_abs_vs_frame_by_frame"]
            verdicts.append(f"{size}: engine fp32 vs plain loop ab max abs {value:.2e} "
                            f"({'within' if ok else 'OUTSIDE'} the 1e-3 golden tolerance)")
    bf16 = _cpu_run(document, "448x448", "bf16", "colorize")
    if bf16:
        goal = CPU_GOALS["bf16_448_s_per_frame"]
        value = comparison.get("bf16_vs_fp32_rgb_psnr_db")
        verdicts.append(
            f"bf16 448x448: {bf16['s_per_frame']:.2f} s/frame, goal <= {goal} "
            f"({'met' if bf16['s_per_frame'] <= goal else 'not met'}); PSNR RGB {value:.1f} dB, "
            f"goal >= {CPU_GOALS['bf16_psnr_db']:g} ({'met' if value >= CPU_GOALS['bf16_psnr_db'] else 'not met'})")
    return verdicts


def _cpu_plot(document: dict, path: Path) -> None:
    pyplot = matplotlib_pyplot()
    if pyplot is None:
        return
    sizes = document["settings"]["sizes"]
    series = [("official (anchor)", lambda s: OFFICIAL_CPU_S_PER_FRAME.get(s)),
              ("frame-by-frame fp32", lambda s: (_cpu_run(document, s, "fp32", "frame-by-frame") or {}).get("s_per_frame")),
              ("engine fp32", lambda s: (_cpu_run(document, s, "fp32", "colorize") or {}).get("s_per_frame")),
              ("engine bf16", lambda s: (_cpu_run(document, s, "bf16", "colorize") or {}).get("s_per_frame"))]
    figure, axis = pyplot.subplots(figsize=(7, 4))
    width = 0.8 / len(series)
    for offset, (name, value) in enumerate(series):
        heights = [value(s) or 0.0 for s in sizes]
        axis.bar([i + offset * width for i in range(len(sizes))], heights, width, label=name)
    if "448x448" in sizes:
        i = sizes.index("448x448")
        for goal, style in ((CPU_GOALS["fp32_448_s_per_frame"], "--"), (CPU_GOALS["bf16_448_s_per_frame"], ":")):
            axis.hlines(goal, i - 0.1, i + 0.9, colors="black", linestyles=style)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], sizes)
    axis.set_ylabel("s/frame end to end (lower is better)")
    axis.set_title(f"colorize CPU, {document['environment']['cpu'][:40]}")
    axis.legend(fontsize=8)
    save_figure(pyplot, figure, path)


def _write_cpu_outputs(document: dict, settings: CpuSettings, final: bool = False) -> None:
    stem = settings.out / f"colorize_cpu_{today()}"
    write_json(stem.with_suffix(".json"), document)
    write_atomic(stem.with_suffix(".md"), _cpu_markdown(document))
    if final and settings.plot:
        _cpu_plot(document, stem.with_suffix(".png"))


# -- GPU mode ------------------------------------------------------------------------------------

@dataclass
class GpuSettings:
    resolutions: list[tuple[str, int, int]]
    precisions: list[str]
    caps_gb: list[float | None]
    frames: int
    warmup_frames: int
    psnr_frames: int
    out: Path
    device: str = "cuda"
    plot: bool = True


def _gpu_measure(colorizer, pool: FramePool, reference: np.ndarray, settings: GpuSettings,
                 device, keep_rgb: list | None) -> dict:
    """One configuration: a warm-up video, then a timed ``predict`` and a timed ``colorize``."""
    import torch

    for _ in colorizer.predict(pool.video(settings.warmup_frames), reference):
        pass
    torch.cuda.synchronize(device)
    row: dict = {}
    with PeakSampler(interval=0.005, cuda_device=device) as sampler:
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
            if keep_rgb is not None and len(keep_rgb) < settings.psnr_frames:
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
        max_device_used_gib=(total - sampler.min_free) / GIB if sampler.min_free is not None else None,
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
                     "caps_gb": [c if c is not None else "full" for c in settings.caps_gb]},
        "anchors": GPU_ANCHORS,
        "emulation": (
            "A cap of X GiB emulates a card with X GiB in total: the caching allocator is limited "
            "with torch.cuda.set_per_process_memory_fraction((X - memory outside the allocator) / "
            "total), and the engine's planner is told the memory still free under that limit "
            "(EngineConfig.memory_limit_bytes). max_device_used_gib comes from mem_get_info "
            "sampled every 5 ms (the cap does not cover the CUDA context); headroom = X - that."),
        "startup_s": {},
        "results": [],
    }
    reference_rgb: dict[str, list[np.ndarray]] = {}
    stem = settings.out / f"colorize_gpu_{today()}"
    for precision in settings.precisions:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        started = time.perf_counter()
        colorizer = build_colorizer(EngineConfig(weights=weights, device=settings.device,
                                                 precision=precision))
        torch.cuda.synchronize(device)
        document["startup_s"][precision] = time.perf_counter() - started
        base_config = colorizer.config
        for cap_gb in settings.caps_gb:
            cap_label = "full" if cap_gb is None else f"{cap_gb:g} GB"
            if cap_gb is not None and cap_gb * GIB > total:
                for label, _, _ in settings.resolutions:
                    document["results"].append({"resolution": label, "precision": precision,
                                                "cap": cap_label, "status": "skipped",
                                                "message": "cap larger than this card"})
                continue
            _cleanup_cuda()
            if cap_gb is None:
                torch.cuda.set_per_process_memory_fraction(1.0, device)
                colorizer.config = replace(base_config, memory_limit_bytes=None)
            else:
                allocator_limit = cap_gb * GIB - outside_allocator
                torch.cuda.set_per_process_memory_fraction(max(0.0, min(1.0, allocator_limit / total)),
                                                           device)
                free_under_cap = int(max(0, allocator_limit - torch.cuda.memory_reserved(device)))
                colorizer.config = replace(base_config, memory_limit_bytes=free_under_cap)
            for label, height, width in settings.resolutions:
                logger.info("%s %s cap %s", label, precision, cap_label)
                row = {"resolution": label, "size": f"{width}x{height}", "precision": precision,
                       "cap": cap_label}
                keep = None
                if cap_gb is None and settings.psnr_frames > 0:
                    keep = reference_rgb.setdefault(label, []) if precision == "fp32" else []
                try:
                    pool = FramePool(height, width, distinct=8)
                    reference = colourful_reference(height, width)
                    row.update(_gpu_measure(colorizer, pool, reference, settings, device, keep))
                    if cap_gb is not None:
                        row["headroom_under_cap_gib"] = cap_gb - row["max_device_used_gib"]
                    if precision != "fp32" and keep and reference_rgb.get(label):
                        row["psnr_vs_fp32_rgb_db"] = _psnr_frames(reference_rgb[label], keep, 255.0)
                except Exception as error:  # one failed configuration must not stop the table
                    first_line = (str(error).strip().splitlines() or [""])[0]
                    row.update(status="failed", message=f"{type(error).__name__}: {first_line}"[:300],
                               events=list(getattr(colorizer, "events", [])))
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


def _gpu_markdown(document: dict) -> str:
    env = document["environment"]
    lines = [
        f"# colorize on GPU ({env['date'][:10]})",
        "",
        f"{env['device']} ({env['total_memory_gib']:.1f} GiB, "
        f"{env['memory_outside_allocator_gib']:.2f} GiB outside the allocator), CUDA {env['cuda']}, "
        f"torch {env['torch']}, Python {env['python']}, code {env['git_commit']}"
        + (" with uncommitted changes in colorize/" if env["colorize_has_uncommitted_changes"] else "")
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
               "e2e fps", "peak alloc", "peak reserved", "max used on card", "headroom", "PSNR vs fp32",
               "engine did / error"]
    rows = []
    for r in document["results"]:
        peak_alloc = max(r.get("model_peak_allocated_gib") or 0, r.get("e2e_peak_allocated_gib") or 0) or None
        peak_res = max(r.get("model_peak_reserved_gib") or 0, r.get("e2e_peak_reserved_gib") or 0) or None
        note = r.get("message") or "; ".join(r.get("events") or []) or r.get("plan_note") or ""
        rows.append([r.get("size", r["resolution"]) + f" ({r['resolution']})", r["precision"], r["cap"],
                     r["status"], r.get("processing_size"), r.get("chunk_size"), r.get("model_fps"),
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
    order = [label for label, _, _ in GPU_RESOLUTIONS]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
    for precision in document["settings"]["precisions"]:
        full = sorted((r for r in ok if r["precision"] == precision and r["cap"] == "full"),
                      key=lambda r: order.index(r["resolution"]))
        if full:
            labels = [r["resolution"] for r in full]
            left.plot(labels, [r["e2e_fps"] for r in full], marker="o", label=f"{precision} end to end")
            left.plot(labels, [r["model_fps"] for r in full], marker="x", linestyle="--",
                      label=f"{precision} model only")
        for cap in sorted({r["cap"] for r in ok if r["precision"] == precision}):
            rows = sorted((r for r in ok if r["precision"] == precision and r["cap"] == cap),
                          key=lambda r: order.index(r["resolution"]))
            right.plot([r["resolution"] for r in rows],
                       [max(r["model_peak_reserved_gib"], r["e2e_peak_reserved_gib"]) for r in rows],
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
    write_atomic(stem.with_suffix(".md"), _gpu_markdown(document))
    if final and plot:
        _gpu_plot(document, stem.with_suffix(".png"))


# -- CLI -----------------------------------------------------------------------------------------

def _pick(table: list[tuple[str, int, int]], raw: str | None) -> list[tuple[str, int, int]]:
    if not raw:
        return table
    wanted = [item.strip() for item in raw.split(",") if item.strip()]
    known = {label: entry for entry in table for label in (entry[0], f"{entry[2]}x{entry[1]}")}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown resolution(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(entry[0] for entry in table)}")
    return [known[w] for w in wanted]


def _caps(raw: str | None) -> list[float | None]:
    if not raw:
        return GPU_CAPS_GB
    caps: list[float | None] = []
    for item in raw.split(","):
        item = item.strip().lower()
        try:
            caps.append(None if item == "full" else float(item))
        except ValueError:
            raise SystemExit(f"--caps: {item!r} is not a number of GB or 'full'") from None
    return caps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="checkpoint (default: synthetic weights)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--frames", type=int, help="timed frames per run (CPU 12, GPU 48)")
    parser.add_argument("--warmup", type=int, help="warm-up frames (CPU 2, GPU 4)")
    parser.add_argument("--quick", action="store_true", help="a small subset, few frames")
    parser.add_argument("--full", action="store_true", help="CPU: also 864x480")
    parser.add_argument("--no-bf16", action="store_true", help="CPU: skip the bf16 engine")
    parser.add_argument("--resolutions", help="GPU: comma list (480p,512x768,960x536,720p,1080p,4K)")
    parser.add_argument("--precisions", default="fp32,fp16", help="GPU: comma list of fp32,fp16,bf16")
    parser.add_argument("--caps", help="GPU: comma list of GB caps and/or 'full' (6,8,12,16,24,full)")
    parser.add_argument("--psnr-frames", type=int, default=8,
                        help="GPU: frames kept at full card to compare half precision with fp32")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no usable CUDA GPU here; use --device cpu")

    with weights_file(args.weights) as (weights, weights_label):
        if device == "cpu":
            settings = CpuSettings(
                sizes=CPU_SIZES[:1] if args.quick else (CPU_FULL_SIZES if args.full else CPU_SIZES),
                timed_frames=args.frames or (4 if args.quick else 12),
                warmup_frames=args.warmup if args.warmup is not None else (1 if args.quick else 2),
                bf16=not args.no_bf16, out=args.out, plot=not args.no_plot)
            document = run_cpu_benchmark(weights, weights_label, settings)
            print(_cpu_markdown(document))
        else:
            settings = GpuSettings(
                resolutions=_pick(GPU_RESOLUTIONS, args.resolutions or ("480p,1080p" if args.quick else None)),
                precisions=[p.strip() for p in args.precisions.split(",") if p.strip()]
                if not args.quick else ["fp16"],
                caps_gb=_caps(args.caps or ("8,full" if args.quick else None)),
                frames=args.frames or (16 if args.quick else 48),
                warmup_frames=args.warmup if args.warmup is not None else 4,
                psnr_frames=args.psnr_frames, out=args.out, device=device,
                plot=not args.no_plot)
            document = run_gpu_benchmark(weights, weights_label, settings)
            print(_gpu_markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
