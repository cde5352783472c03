"""Long footage stays flat: RSS and s/frame over a long clip with cuts and keyframe references.

One synthetic video (112x112 by default) of ``--frames`` frames cut into 21 shots (20 cuts, evenly
spaced, each shot drawn from one of four different textures) with 5 references (the main one
and 4 keyframes: two at cuts, two inside shots). The engine gets the cuts and references through
its ``VideoGuide``, exactly as ``colorize --shots FILE --ref FRAME=PATH`` gives them, and a
per-frame callback collects the memory-match score as ``--report`` does. Every ``--every``
frames it records RSS, the peak RSS since the last sample, s/frame over the interval, the memory
bank's size and the mean score. ``--max-seconds`` stops the run early (the result says so).

    python benchmarks/bench_footage.py --frames 10000 --max-seconds 900

Writes ``benchmarks/results/colorize_footage_<device>_<date>.{json,md}``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    MIB, OtherLoad, PeakSampler, colourful_reference, current_rss, environment, environment_line,
    gray_frame, load_average, markdown_table, process_max_rss, today, weights_file, write_result,
    add_run_arguments,
)

logger = logging.getLogger("bench_footage")
TEXTURES = 4
DISTINCT = 16


def layout(frames: int, cuts: int = 20) -> tuple[list[int], list[int]]:
    """Evenly spaced cuts, and 4 keyframes: at the 5th and 15th cut, inside shots 9 and 18."""
    shot = frames / (cuts + 1)
    starts = [round(shot * (i + 1)) for i in range(cuts)]
    keyframes = sorted({starts[4], starts[14], round(shot * 9.5), round(shot * 18.5)})
    return starts, keyframes


def run(weights: Path, label: str, args) -> dict:
    from colorize.engine import EngineConfig, VideoGuide, build_colorizer

    colorizer = build_colorizer(EngineConfig(weights=weights, device=args.device,
                                             precision=args.precision))
    size = args.size
    pools = [[gray_frame(size, size, texture * 1000 + i) for i in range(DISTINCT)]
             for texture in range(TEXTURES)]
    cuts, keyframes = layout(args.frames)
    starts = [0, *cuts]
    shot_of = np.searchsorted(np.array(cuts), np.arange(args.frames), side="right")

    def frames():
        for index in range(args.frames):
            shot = int(shot_of[index])
            yield pools[shot % TEXTURES][(index - starts[shot]) % DISTINCT]

    references = {frame: np.roll(colourful_reference(size, size), 17 * (n + 1), axis=1)
                  for n, frame in enumerate(keyframes)}
    scores: list[float] = []
    cut_set = set(cuts)
    guide = VideoGuide(keyframes=references, is_cut=cut_set.__contains__,
                       on_frame=lambda record: scores.append(record.score))
    document = {
        "benchmark": "colorize-footage",
        "environment": environment(colorizer.device.type),
        "weights": label,
        "settings": {"frames": args.frames, "size": f"{size}x{size}", "cuts": cuts,
                     "keyframes": keyframes, "references": 1 + len(keyframes),
                     "precision": colorizer.precision, "every": args.every,
                     "torch_threads": __import__("torch").get_num_threads(),
                     "max_seconds": args.max_seconds},
        "samples": [],
    }
    stem = args.out / f"colorize_footage_{colorizer.device.type}_{today()}"
    points = set(range(args.every, args.frames + 1, args.every)) | {args.frames}
    started = last_time = time.perf_counter()
    last_index = 0
    stopped_early = False
    with PeakSampler(interval=0.05) as sampler:
        sampler.take_max_rss()
        others = OtherLoad().start()
        produce = colorizer.colorize(frames(), colourful_reference(size, size), guide)
        for index, _ in enumerate(produce, start=1):
            over_time = time.perf_counter() - started > args.max_seconds
            if index not in points and not over_time:
                continue
            now = time.perf_counter()
            others.stop()
            bank = colorizer._video.propagator.memory
            document["samples"].append({
                "frame": index, "elapsed_s": now - started,
                "s_per_frame": (now - last_time) / (index - last_index),
                "rss_mb": current_rss() / MIB,
                "peak_rss_since_last_sample_mb": sampler.take_max_rss() / MIB,
                "other_processes_cpu_share": others.share,
                "shot": int(shot_of[index - 1]),
                "memory_elements": bank.size, "permanent_elements": bank.permanent_elements,
                "mean_score": float(np.mean(scores[last_index:index])),
            })
            logger.info("frame %d: %.0f MB RSS, %.3f s/frame", index,
                        document["samples"][-1]["rss_mb"], document["samples"][-1]["s_per_frame"])
            last_time, last_index = now, index
            _write(document, stem)
            if over_time:
                stopped_early = True
                produce.close()
                break
            others = OtherLoad().start()
    done = document["samples"][-1]["frame"] if document["samples"] else 0
    document["frames_done"] = done
    document["stopped_early"] = stopped_early
    document["process_max_rss_mb"] = process_max_rss() / MIB
    document["load_average_end"] = load_average()
    document["summary"] = _summary(document["samples"])
    _write(document, stem)
    return document


def _summary(samples: list[dict]) -> dict:
    """First sample at or after frame 200 against the rest: RSS growth and s/frame drift."""
    after = [s for s in samples if s["frame"] >= 200] or samples
    if len(after) < 2:
        return {}
    first, rest = after[0], after[1:]
    speeds = [s["s_per_frame"] for s in after]
    return {
        "from_frame": first["frame"], "to_frame": samples[-1]["frame"],
        "rss_at_start_mb": first["rss_mb"], "rss_end_mb": samples[-1]["rss_mb"],
        "rss_peak_start_mb": first["peak_rss_since_last_sample_mb"],
        "rss_peak_after_mb": max(s["peak_rss_since_last_sample_mb"] for s in rest),
        "s_per_frame_first": speeds[0], "s_per_frame_last": speeds[-1],
        "s_per_frame_median": float(np.median(speeds)),
    }


def _markdown(document: dict) -> str:
    env, settings = document["environment"], document["settings"]
    lines = [
        f"# colorize: long footage with cuts and keyframes ({env['date'][:10]})", "",
        environment_line(env, document["weights"]),
        f"Synthetic video of {settings['frames']} frames at {settings['size']}, "
        f"{settings['precision']}, {settings.get('torch_threads')} torch thread(s), "
        f"{len(settings['cuts'])} cuts, {settings['references']} "
        f"references (keyframes at {', '.join(map(str, settings['keyframes']))}). Load average "
        f"at start {env['load_average_start']}, at end {document.get('load_average_end', 'n/a')}.",
        "",
    ]
    if document.get("stopped_early"):
        lines += [f"**Stopped after {document['frames_done']} of {settings['frames']} frames** "
                  f"(time budget {settings['max_seconds']} s on a shared CPU).", ""]
    headers = ["frame", "shot", "elapsed s", "s/frame", "others' CPU", "RSS MB",
               "peak RSS since last MB", "memory elements", "permanent", "mean score"]
    rows = [[s["frame"], s["shot"], s["elapsed_s"], s["s_per_frame"],
             None if s["other_processes_cpu_share"] is None
             else f"{100 * s['other_processes_cpu_share']:.0f}%",
             round(s["rss_mb"]), round(s["peak_rss_since_last_sample_mb"]),
             s["memory_elements"], s["permanent_elements"], round(s["mean_score"], 3)]
            for s in document["samples"]]
    lines.append(markdown_table(headers, rows))
    summary = document.get("summary")
    if summary:
        lines += ["", f"From frame {summary['from_frame']} to {summary['to_frame']}: RSS "
                  f"{summary['rss_at_start_mb']:.0f} -> {summary['rss_end_mb']:.0f} MB, peak "
                  f"{summary['rss_peak_start_mb']:.0f} MB up to frame {summary['from_frame']} and "
                  f"{summary['rss_peak_after_mb']:.0f} MB after; s/frame "
                  f"{summary['s_per_frame_first']:.3f} first, {summary['s_per_frame_last']:.3f} "
                  f"last, median {summary['s_per_frame_median']:.3f} (others' CPU load varies: "
                  "see the column)."]
    return "\n".join(lines) + "\n"


def _write(document: dict, stem: Path) -> None:
    write_result(stem, document, _markdown(document))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, device_default="cpu")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=250, help="sample every N frames")
    parser.add_argument("--max-seconds", type=float, default=float("inf"),
                        help="stop after this long (the result says it stopped early)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with weights_file(args.weights) as (weights, label):
        document = run(weights, label, args)
    print(_markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
