"""CPU mode of bench_colorize: our engine against a plain frame-by-frame loop of our own.

Both run fp32 with the same numbers: the engine (chunked key encoding, background decode and
compute) and a loop that, per frame, converts to LAB, key-encodes that frame alone and runs one
propagation step (no threads, no chunking, like the official flow). The opt-in bf16 engine is
measured too, with its PSNR against our fp32 output.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from colorize_bench_common import (
    MIB, FramePool, OtherLoad, PeakRss, Stopwatch, colourful_reference, current_rss,
    environment, load_average, markdown_table, matplotlib_pyplot, process_max_rss, psnr_frames,
    release_host_memory, save_figure, today, wait_for_quiet, write_atomic, write_json,
)

logger = logging.getLogger("bench_colorize")

CPU_SIZES = [("224x224", 224, 224), ("448x448", 448, 448)]
CPU_FULL_SIZES = CPU_SIZES + [("864x480", 480, 864)]

# Anchors from issue 4: the official implementation on this project's 2-core CPU machine.
OFFICIAL_CPU_S_PER_FRAME = {"224x224": 0.735, "448x448": 2.77, "864x480": 8.12}
CPU_GOALS = {"fp32_448_s_per_frame": 2.1, "bf16_448_s_per_frame": 1.4, "bf16_psnr_db": 40.0,
             "ab_max_abs_vs_frame_by_frame": 1e-3}


# -- the plain frame-by-frame loop ------------------------------------------------------------

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


# -- measurements ----------------------------------------------------------------------------

@dataclass
class Quiet:
    """How a run protects itself from other processes on a shared machine."""

    wait_s: float = 0.0          # before a run, wait up to this long for the CPUs to go quiet
    max_share: float = 0.10      # a run during which others used more of the CPUs is redone...
    attempts: int = 1            # ...up to this many times in all (the last attempt is kept)


@dataclass
class CpuSettings:
    sizes: list[tuple[str, int, int]]
    timed_frames: int
    warmup_frames: int
    bf16: bool
    out: Path
    plot: bool = True
    chunk_size: int | None = None       # None: the engine's planner decides
    suffix: str = ""                    # added to the result file names
    quiet: Quiet = field(default_factory=Quiet)


def _first_timed_frame(warmup: int, chunk: int) -> int:
    """Index of the first timed frame: the warm-up rounded up to whole key-encoding chunks, so
    that the timed window holds whole chunks (their encoding and their steps)."""
    return max(1, math.ceil(max(1, warmup) / chunk) * chunk)


def _timed_cpu_run(label: str, produce: Callable[[], Iterator], first_timed: int,
                   keep: Callable[[int, object], float], outputs: list[list],
                   quiet: Quiet) -> dict:
    """Consume ``produce()`` and time it. ``keep`` stores what later comparisons need (into the
    lists in ``outputs``, emptied before a repeated attempt) and returns the seconds it spent on
    work that belongs to the path (the RGB conversion of the plain loop)."""
    for attempt in range(1, max(1, quiet.attempts) + 1):
        for stored in outputs:
            stored.clear()
        row = _timed_attempt(label, produce, first_timed, keep, quiet.wait_s)
        row["attempt"] = attempt
        share = row["other_processes_cpu_share"]
        if share is None or share <= quiet.max_share:
            break
        logger.info("%s: other processes used %.0f%% of the CPUs, measuring again", label,
                    100 * share)
    return row


def _timed_attempt(label: str, produce: Callable[[], Iterator], first_timed: int,
                   keep: Callable[[int, object], float], wait_quiet_s: float) -> dict:
    release_host_memory()
    waited = wait_for_quiet(wait_quiet_s) if wait_quiet_s > 0 else 0.0
    baseline = current_rss()
    extra: list[float] = []
    with PeakRss() as sampler, OtherLoad() as others:
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
        "other_processes_cpu_share": others.share,
        "waited_for_quiet_s": waited,
    }


Outputs = list[np.ndarray]


def _engine_runs(colorizer, size: tuple[str, int, int], reference: np.ndarray, pool: FramePool,
                 settings: CpuSettings, tag: str) -> tuple[list[dict], Outputs, Outputs]:
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
    for mode, produce, keep, outputs in (
        ("predict", lambda: colorizer.predict(pool.video(total), reference), keep_ab, ab_outputs),
        ("colorize", lambda: colorizer.colorize(pool.video(total), reference), keep_rgb,
         rgb_outputs),
    ):
        logger.info("%s %s engine %s: %d frames (%d timed)", label, tag, mode, total,
                    settings.timed_frames)
        row = _timed_cpu_run(f"engine {tag} {mode}", produce, first_timed, keep, [outputs],
                             settings.quiet)
        plan = colorizer.last_plan
        row.update(size=label, precision=tag, mode=mode, chunk_size=plan.chunk_size,
                   processing_size=f"{plan.processing_size[1]}x{plan.processing_size[0]}",
                   events=list(colorizer.events))
        rows.append(row)
    return rows, ab_outputs, rgb_outputs


def _frame_by_frame_run(network, memory_settings, size: tuple[str, int, int],
                        reference: np.ndarray, pool: FramePool,
                        settings: CpuSettings) -> tuple[dict, Outputs, Outputs]:
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
                         first_timed, keep, [ab_outputs, rgb_outputs], settings.quiet)
    row.update(size=label, precision="fp32", mode="frame-by-frame", chunk_size=1,
               processing_size=f"{width}x{height}", events=[])
    return row, ab_outputs, rgb_outputs


def _cold_start(colorizer, size: tuple[str, int, int]) -> dict:
    """A first, untimed two-frame video: the process's first run pays one-off costs (kernel
    selection, first page faults) that would otherwise land in the first measured run."""
    label, height, width = size
    pool = FramePool(height, width, distinct=2)
    watch = Stopwatch()
    for _ in colorizer.predict(pool.video(2), colourful_reference(height, width)):
        watch.tick()
    return {"size": label, "first_frame_s": watch.stamps[0], "two_frames_s": watch.stamps[-1]}


def _max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    count = min(len(a), len(b))
    return max(float(np.abs(a[i].astype(np.float64) - b[i].astype(np.float64)).max())
               for i in range(count))


def run_cpu_benchmark(weights: Path, weights_label: str, settings: CpuSettings) -> dict:
    """All CPU measurements; writes JSON/markdown/PNG under ``settings.out``; returns the JSON."""
    import torch

    from colorize.engine import EngineConfig, build_colorizer

    started = time.perf_counter()
    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32",
                                             chunk_size=settings.chunk_size))
    build_s = time.perf_counter() - started
    document = {
        "benchmark": "colorize-cpu",
        "environment": environment("cpu"),
        "weights": weights_label,
        "settings": {"timed_frames": settings.timed_frames, "warmup_frames": settings.warmup_frames,
                     "quiet": asdict(settings.quiet),
                     "sizes": [s[0] for s in settings.sizes], "bf16": settings.bf16,
                     "chunk_size": settings.chunk_size or "planner",
                     "memory": asdict(colorizer.config.memory)},
        "anchors": {"official_s_per_frame": OFFICIAL_CPU_S_PER_FRAME, "goals": CPU_GOALS},
        "startup_s": {"fp32": build_s},
        "runs": [],
        "comparisons": {},
    }
    document["cold_start"] = _cold_start(colorizer, settings.sizes[0])
    ab_fp32: dict[str, list[np.ndarray]] = {}
    rgb_fp32: dict[str, list[np.ndarray]] = {}
    for size in settings.sizes:
        label, height, width = size
        pool = FramePool(height, width, distinct=16)
        reference = colourful_reference(height, width)
        rows, ab_engine, rgb_engine = _engine_runs(colorizer, size, reference, pool, settings,
                                                   "fp32")
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
        colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="bf16",
                                                 chunk_size=settings.chunk_size))
        document["startup_s"]["bf16"] = time.perf_counter() - started
        for size in settings.sizes:
            label, height, width = size
            pool = FramePool(height, width, distinct=16)
            reference = colourful_reference(height, width)
            rows, ab_bf16, rgb_bf16 = _engine_runs(colorizer, size, reference, pool, settings,
                                                   "bf16")
            document["runs"] += rows
            document["comparisons"][label].update({
                "bf16_vs_fp32_ab_psnr_db": psnr_frames(ab_fp32[label], ab_bf16, 2.0),
                "bf16_vs_fp32_ab_max_abs": _max_abs(ab_fp32[label], ab_bf16),
                "bf16_vs_fp32_rgb_psnr_db": psnr_frames(rgb_fp32[label], rgb_bf16, 255.0),
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


def cpu_markdown(document: dict) -> str:
    env = document["environment"]
    lines = [
        f"# colorize on CPU: engine vs frame-by-frame ({env['date'][:10]})",
        "",
        f"{env['cpu']}, {env['logical_cpus']} logical CPUs, torch {env['torch']} "
        f"({document.get('torch_threads', env['torch_threads'])} threads), "
        f"Python {env['python']}, {env['platform']}. Code {env['git_commit']}"
        + (" with uncommitted changes in colorize/"
           if env["colorize_has_uncommitted_changes"] else "")
        + f". Weights: {document['weights']}.",
        f"Load average (1, 5, 15 min) at start {env['load_average_start']}, "
        f"at end {document.get('load_average_end', 'n/a (run in progress)')}.",
        f"Each figure: {document['settings']['timed_frames']} timed frames after "
        f"{document['settings']['warmup_frames']} warm-up frames (rounded up to whole "
        "key-encoding chunks), one synthetic video per run, reference as a separate exemplar.",
        "",
        "s/frame end to end: `colorize` to RGB uint8 arrays (engine), or the plain loop including "
        "its per-frame RGB conversion; model only: `predict` (engine), or the loop without the RGB "
        "conversion. Peak RSS: the exact peak during the run (Linux VmHWM, reset before it; the process holds the model). "
        "Others' CPU: share of the machine's CPU time used by other processes during the run(s) "
        "(near 0: the figures had the machine to themselves).",
        "",
    ]
    headers = ["size", "path", "s/frame end to end", "s/frame model only", "chunk",
               "first frame s", "peak RSS MB", "others' CPU", "events"]
    rows = []
    for size in document["settings"]["sizes"]:
        fbf = _cpu_run(document, size, "fp32", "frame-by-frame")
        if fbf:
            rows.append([size, "frame-by-frame fp32", fbf["s_per_frame"],
                         fbf["s_per_frame_without_rgb"], 1, fbf["first_frame_s"],
                         round(fbf["peak_rss_mb"]), _others([fbf]), ""])
        for precision in ("fp32", "bf16"):
            e2e = _cpu_run(document, size, precision, "colorize")
            model = _cpu_run(document, size, precision, "predict")
            runs = [r for r in (e2e, model) if r]
            if runs:
                peak = max(r["peak_rss_mb"] for r in runs)
                events = "; ".join(sorted({e for r in runs for e in r.get("events", [])}))
                rows.append([size, f"engine {precision}", e2e and e2e["s_per_frame"],
                             model and model["s_per_frame"], runs[0]["chunk_size"],
                             e2e and e2e["first_frame_s"], round(peak), _others(runs), events])
    lines.append(markdown_table(headers, rows))
    lines += ["", "## Against the anchors and goals", ""]
    headers = ["size", "official s/frame", "frame-by-frame", "engine fp32",
               "speed-up vs plain loop", "official / engine fp32", "engine bf16",
               "ab max abs fp32 engine vs loop",
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
        f"{goals['fp32_448_s_per_frame']} s/frame with ab within "
        f"{goals['ab_max_abs_vs_frame_by_frame']:g} of the plain loop; bf16 <= "
        f"{goals['bf16_448_s_per_frame']} s/frame with PSNR >= "
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
    cold = document.get("cold_start")
    if cold:
        lines.append(f"Cold start (first video of the process, untimed warm-up, {cold['size']}): "
                     f"first frame after {cold['first_frame_s']:.2f} s, two frames after "
                     f"{cold['two_frames_s']:.2f} s.")
    return "\n".join(lines) + "\n"


def _others(runs: list[dict]) -> str | None:
    shares = [r["other_processes_cpu_share"] for r in runs
              if r.get("other_processes_cpu_share") is not None]
    return f"{100 * max(shares):.0f}%" if shares else None


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
        psnr_goal = CPU_GOALS["bf16_psnr_db"]
        verdicts.append(
            f"bf16 448x448: {bf16['s_per_frame']:.2f} s/frame, goal <= {goal} "
            f"({'met' if bf16['s_per_frame'] <= goal else 'not met'}); PSNR RGB {value:.1f} dB, "
            f"goal >= {psnr_goal:g} ({'met' if value >= psnr_goal else 'not met'})")
    return verdicts


def _cpu_plot(document: dict, path: Path) -> None:
    pyplot = matplotlib_pyplot()
    if pyplot is None:
        return
    sizes = document["settings"]["sizes"]
    def measured(precision: str, mode: str) -> Callable[[str], float | None]:
        return lambda s: (_cpu_run(document, s, precision, mode) or {}).get("s_per_frame")

    series = [("official (anchor)", OFFICIAL_CPU_S_PER_FRAME.get),
              ("frame-by-frame fp32", measured("fp32", "frame-by-frame")),
              ("engine fp32", measured("fp32", "colorize")),
              ("engine bf16", measured("bf16", "colorize"))]
    figure, axis = pyplot.subplots(figsize=(7, 4))
    width = 0.8 / len(series)
    for offset, (name, value) in enumerate(series):
        heights = [value(s) or 0.0 for s in sizes]
        axis.bar([i + offset * width for i in range(len(sizes))], heights, width, label=name)
    if "448x448" in sizes:
        i = sizes.index("448x448")
        for goal, style, name in ((CPU_GOALS["fp32_448_s_per_frame"], "--", "goal fp32"),
                                  (CPU_GOALS["bf16_448_s_per_frame"], ":", "goal bf16")):
            axis.hlines(goal, i - 0.1, i + 0.9, colors="black", linestyles=style, label=name)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], sizes)
    axis.set_ylabel("s/frame end to end (lower is better)")
    axis.set_title(f"colorize CPU, {document['environment']['cpu'][:40]}")
    axis.legend(fontsize=8)
    save_figure(pyplot, figure, path)


def _write_cpu_outputs(document: dict, settings: CpuSettings, final: bool = False) -> None:
    stem = settings.out / f"colorize_cpu_{today()}{settings.suffix}"
    write_json(stem.with_suffix(".json"), document)
    write_atomic(stem.with_suffix(".md"), cpu_markdown(document))
    if final and settings.plot:
        _cpu_plot(document, stem.with_suffix(".png"))
