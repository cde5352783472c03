"""Cost of resume checkpoints: seconds per frame with and without them, at the default interval.

Runs the real pipeline (decode -> engine -> output) on a synthetic clip with the full-size
synthetic checkpoint, CPU fp32, four ways: PNG frames and MP4, each written directly
(``--checkpoint-every 0``, the normal path) and with checkpoints at the default (automatic)
interval. The configurations are interleaved over ``--rounds`` rounds so that a change in the
machine's load hits all of them alike; the table gives the median per configuration, wall-clock
and this process's CPU time (which other processes on a busy machine disturb less).

It also times one save of a full-size engine state: the memory bank at its default bounds for a
448x448 frame (10,000 long-term elements and 10 working frames of 784 elements, 4.6 KB each) and
derives the automatic interval from it.

    python benchmarks/bench_checkpoint.py [--size 224x224] [--frames 60] [--rounds 2]
                                          [--weights PATH] [--out benchmarks/results]
    python benchmarks/bench_checkpoint.py --components   # parts only: quick, robust to load

Writes ``benchmarks/results/bench_checkpoint.{json,md}`` (whole runs) or
``bench_checkpoint_components.{json,md}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from colorize_bench_common import (  # noqa: E402
    RESULTS_DIR,
    OtherLoad,
    colourful_reference,
    environment,
    gray_frame,
    markdown_table,
    weights_file,
    write_atomic,
    write_json,
)


def write_clip(path: Path, width: int, height: int, count: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(gray_frame(height, width, index), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def one_run(colorizer, clip: Path, reference: np.ndarray, output: Path, checkpoints: bool) -> dict:
    from colorize.footage.resume import CheckpointSettings, ResumeSession
    from colorize.pipeline import run_colorization
    from colorize.progress import ProgressReporter
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    with open_source(clip) as source:
        target = resolve_output(str(output), source.info, overwrite=True)
        session = None
        if checkpoints:
            session = ResumeSession.open(target, source, lambda: open_source(clip), None,
                                         {"bench": True}, CheckpointSettings(every=None))
        sink = session.parts if session is not None else open_sink(target, source)
        progress = ProgressReporter(total=None, enabled=False)
        wall, cpu = time.perf_counter(), time.process_time()
        with OtherLoad() as load:
            frames = run_colorization(source, reference, colorizer, sink, progress, resume=session)
            if session is not None:
                session.finish(frames)
            else:
                sink.commit()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"frames": frames, "wall_s_per_frame": wall / frames, "cpu_s_per_frame": cpu / frames,
            "checkpoints": len(session.costs) if session else 0,
            "checkpoint_costs_s": list(session.costs) if session else [],
            "other_load": load.share}


def full_state_save_cost(folder: Path) -> dict:
    """One save of an engine state as large as the default memory bounds allow at 448x448."""
    import torch

    from colorize.footage.checkpoint import CheckpointFolder, CheckpointRecord

    elements = 10_000 + 10 * 784
    per_element = 64 + 64 + 1 + 1024 + 2  # key, selection, shrinkage, values, usage (float32)
    tensors = {"memory": torch.randn(elements, per_element), "hidden": torch.randn(1, 64, 28, 28)}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    checkpoint = CheckpointFolder(folder / "state.colorize-resume")
    costs = []
    for attempt in range(3):
        record = CheckpointRecord(next_frame=attempt + 1, fingerprint={}, engine_meta={},
                                  state_file=None, state_sha256=None)
        costs.append(checkpoint.save(record, tensors))
    return {"state_bytes": size, "save_s": statistics.median(costs), "save_s_all": costs}


# Published CPU fp32 frame times (benchmarks/results/colorize_cpu_2026-11-21.md, code 13dfb48,
# 2-core AMD EPYC, quiet machine): the denominators of the component figures below.
PUBLISHED_CPU_S_PER_FRAME = {"224x224": 0.508, "448x448": 2.04}


def segment_costs(folder: Path, width: int, height: int, count: int = 24) -> dict:
    """Per frame: the video encoded directly, the same in two checkpoint segments, the join of
    the segments (a packet copy), and PNG fsync."""
    import os

    from colorize.footage.parts import VideoSegmentParts
    from colorize.video import images
    from colorize.video.sink import VideoFileSink
    from colorize.video.source import open_source
    from colorize.video.target import OutputTarget

    clip = folder / f"clip-{width}.mp4"
    write_clip(clip, width, height, count)
    rng = np.random.default_rng(0)
    base = colourful_reference(height, width).astype(np.int16)
    frames = [np.clip(base + rng.integers(-2, 3, base.shape), 0, 255).astype(np.uint8)
              for _ in range(count)]
    with open_source(clip) as source:
        metas = [frame.meta for frame in source.frames()]
    with open_source(clip) as source:
        target = OutputTarget(folder / f"direct-{width}.mp4", "video", container_format="mp4")
        sink = VideoFileSink(target, source, crf=None)
        started = time.perf_counter()
        for rgb, meta in zip(frames, metas):
            sink.write(rgb, meta)
        sink.commit()
        direct_s = (time.perf_counter() - started) / count
    with open_source(clip) as source:
        target = OutputTarget(folder / f"joined-{width}.mp4", "video", container_format="mp4")
        parts = VideoSegmentParts(folder / f"seg-{width}", target, source,
                                  lambda: open_source(clip), crf=None)
        started = time.perf_counter()
        for rgb, meta in zip(frames, metas):
            parts.write(rgb, meta)
            if meta.index == count // 2 - 1:
                parts.make_durable()
        parts.make_durable()
        segments_s = (time.perf_counter() - started) / count
        started = time.perf_counter()
        parts.commit()
        join_s = (time.perf_counter() - started) / count
    png_dir = folder / f"png-{width}"
    png_dir.mkdir()
    paths = []
    for index, rgb in enumerate(frames):
        paths.append(png_dir / f"{index:06d}.png")
        images.save_image(rgb, paths[-1], "PNG")
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_s = (time.perf_counter() - started) / count
    return {"direct_encode_s_per_frame": direct_s, "segment_encode_s_per_frame": segments_s,
            "join_s_per_frame": join_s, "frames": count,
            "video_extra_s_per_frame": segments_s + join_s - direct_s,
            "png_fsync_s_per_frame": fsync_s}


def components(out: Path) -> None:
    """Quick figures that a busy machine disturbs little: save cost and per-frame extras."""
    from colorize.footage.resume import AUTO_MIN_SECONDS, TARGET_OVERHEAD

    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as temp:
        folder = Path(temp)
        state = full_state_save_cost(folder)
        sizes = {size: segment_costs(folder, *(int(v) for v in size.split("x")))
                 for size in ("224x224", "448x448", "1920x1080")}
    interval_s = max(AUTO_MIN_SECONDS, state["save_s"] / TARGET_OVERHEAD)
    rows = []
    for size, frame_s in PUBLISHED_CPU_S_PER_FRAME.items():
        every = interval_s / frame_s
        save_share = state["save_s"] / (interval_s + state["save_s"])
        extra = sizes[size]
        video_extra = extra["video_extra_s_per_frame"]
        rows.append([size, f"{frame_s:.3f}", f"{every:.0f}", f"{100 * save_share:.2f}%",
                     f"{1000 * extra['png_fsync_s_per_frame']:.2f} ms",
                     f"{1000 * extra['direct_encode_s_per_frame']:.1f} / "
                     f"{1000 * extra['segment_encode_s_per_frame']:.1f} / "
                     f"{1000 * extra['join_s_per_frame']:.2f} ms",
                     f"{1000 * video_extra:+.1f} ms ({100 * video_extra / frame_s:+.1f}%)"])
    env = environment("cpu")
    document = {"environment": env, "mode": "components", "full_state_save": state,
                "auto_interval_s": interval_s, "per_frame_extras": sizes,
                "published_cpu_s_per_frame": PUBLISHED_CPU_S_PER_FRAME}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench_checkpoint_components.json", document)
    table = markdown_table(["frame", "CPU fp32 s/frame (published)", "frames between saves (auto)",
                            "time in saves", "PNG output: fsync per frame",
                            "MP4: encode direct / in segments / join, per frame",
                            "MP4: extra per frame"], rows)
    hd = sizes["1920x1080"]
    text = (f"# Resume checkpoints: cost at the default interval (components)\n\n"
            f"Machine: {env['cpu']}, {env['logical_cpus']} logical CPUs, torch {env['torch']}, "
            f"code {env['git_commit']}"
            f"{' + local edits' if env['colorize_has_uncommitted_changes'] else ''}, "
            f"{env['date']}. Load average at start: {env['load_average_start']} (a shared, busy "
            f"machine: whole-run timings were not stable enough to resolve a 3% difference, so "
            f"this table is built from parts timed on their own).\n\n"
            f"One save of a full-size engine state ({state['state_bytes'] / 2**20:.0f} MiB: the "
            f"memory bank at its default bounds for a 448x448 frame) with its record and fsync: "
            f"{state['save_s']:.3f} s (median of 3; all: "
            f"{', '.join(f'{v:.3f}' for v in state['save_s_all'])}). The automatic interval is "
            f"max({AUTO_MIN_SECONDS:.0f} s, cost / {TARGET_OVERHEAD:.0%}) = {interval_s:.1f} s "
            f"of work, so saves take cost / (interval + cost) of the run, whatever the frame "
            f"time.\n\n{table}\n\n"
            f"PNG output writes the same PNG files as without checkpoints (into the checkpoint "
            f"folder, renamed into place at the end), plus one fsync per frame at each save. "
            f"MP4 output encodes the video in segments, one per checkpoint interval, in the "
            f"output's own codec and settings, and joins them at the end by copying their "
            f"packets: the extra per frame is the segmented encode plus the join minus the "
            f"direct encode ({hd['frames']} frames in 2 segments; at 1920x1080: "
            f"{1000 * hd['direct_encode_s_per_frame']:.0f} ms direct, "
            f"{1000 * hd['segment_encode_s_per_frame']:.0f} ms in segments, "
            f"{1000 * hd['join_s_per_frame']:.2f} ms join). Encoder timings on a shared machine "
            f"vary by a few percent from run to run, which is the size of this difference.\n")
    write_atomic(out / "bench_checkpoint_components.md", text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="224x224")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--components", action="store_true",
                        help="only the quick part figures (save cost, per-frame extras)")
    args = parser.parse_args()
    if args.components:
        components(args.out)
        return
    width, height = (int(v) for v in args.size.split("x"))

    from colorize.engine import EngineConfig, build_colorizer
    from colorize.footage.resume import AUTO_MIN_SECONDS, TARGET_OVERHEAD

    runs: dict[str, list[dict]] = {}
    with weights_file(args.weights) as (weights, weights_label), \
            tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as temp:
        folder = Path(temp)
        clip = folder / "clip.mp4"
        write_clip(clip, width, height, args.frames)
        reference = colourful_reference(height, width)
        colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32"))
        one_run(colorizer, clip, reference, folder / "warmup", checkpoints=False)
        configurations = [("PNG frames", "frames", False), ("PNG frames", "frames", True),
                          ("MP4", "out.mp4", False), ("MP4", "out.mp4", True)]
        for round_index in range(args.rounds):
            for label, name, checkpoints in configurations:
                key = f"{label} | {'checkpoints (auto)' if checkpoints else 'none'}"
                result = one_run(colorizer, clip, reference, folder / f"{round_index}-{name}",
                                 checkpoints)
                runs.setdefault(key, []).append(result)
                print(key, {k: v for k, v in result.items() if k != "checkpoint_costs_s"},
                      flush=True)
        state = full_state_save_cost(folder)

    rows, summary = [], {}
    for key, results in runs.items():
        wall = statistics.median(r["wall_s_per_frame"] for r in results)
        cpu = statistics.median(r["cpu_s_per_frame"] for r in results)
        saving = [sum(r["checkpoint_costs_s"]) / (r["wall_s_per_frame"] * r["frames"])
                  for r in results]
        summary[key] = {"wall_s_per_frame": wall, "cpu_s_per_frame": cpu,
                        "checkpoints_per_run": [r["checkpoints"] for r in results],
                        "share_of_wall_time_spent_saving": statistics.median(saving)}
    for label in ("PNG frames", "MP4"):
        base = summary[f"{label} | none"]
        with_ = summary[f"{label} | checkpoints (auto)"]
        for key, figures in ((f"{label} | none", base), (f"{label} | checkpoints (auto)", with_)):
            rows.append([key, f"{figures['wall_s_per_frame']:.3f}", f"{figures['cpu_s_per_frame']:.3f}",
                         ", ".join(map(str, figures["checkpoints_per_run"])),
                         f"{100 * figures['share_of_wall_time_spent_saving']:.2f}%",
                         "" if figures is base else
                         f"{100 * (figures['wall_s_per_frame'] / base['wall_s_per_frame'] - 1):+.1f}% / "
                         f"{100 * (figures['cpu_s_per_frame'] / base['cpu_s_per_frame'] - 1):+.1f}%"])
    interval_s = max(AUTO_MIN_SECONDS, state["save_s"] / TARGET_OVERHEAD)
    env = environment("cpu")
    document = {"environment": env, "weights": weights_label, "size": args.size,
                "frames": args.frames, "rounds": args.rounds, "runs": runs, "summary": summary,
                "full_state_save": state, "auto_interval_s_for_full_state": interval_s}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench_checkpoint.json", document)
    table = markdown_table(["output / checkpoints", "wall s/frame", "CPU s/frame",
                            "checkpoints per run", "time in saves", "difference (wall / CPU)"],
                           rows)
    text = (f"# Resume checkpoints: cost at the default interval\n\n"
            f"Machine: {env['cpu']}, {env['logical_cpus']} logical CPUs, torch {env['torch']} "
            f"({env['torch_threads']} threads), code {env['git_commit']}"
            f"{' + local edits' if env['colorize_has_uncommitted_changes'] else ''}, {env['date']}. "
            f"Load average at start: {env['load_average_start']}.\n\n"
            f"CPU fp32, {args.size}, {args.frames} frames per run, weights: {weights_label}; "
            f"median of {args.rounds} interleaved rounds.\n\n{table}\n\n"
            f"'time in saves' is the measured time of the checkpoint saves (engine state, "
            f"record, fsync of the frames) as a share of the run: the cost the automatic "
            f"interval bounds at 3%. 'difference' compares whole runs with and without "
            f"checkpoints; it also holds, for MP4, the encoding in segments and their join, "
            f"and on a busy machine the noise of the load.\n\n"
            f"One save of a full-size engine state ({state['state_bytes'] / 2**20:.0f} MiB, the "
            f"default memory bounds at 448x448): {state['save_s']:.3f} s (median of 3), so the "
            f"automatic interval there is max({AUTO_MIN_SECONDS:.0f} s, cost / "
            f"{TARGET_OVERHEAD:.0%}) = {interval_s:.1f} s of work between checkpoints.\n")
    write_atomic(args.out / "bench_checkpoint.md", text)
    print(text)


if __name__ == "__main__":
    main()
