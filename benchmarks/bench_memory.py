"""Bounded memory over long videos: host RSS (and CUDA memory) from frame 100 to frame N.

Runs the engine on one long synthetic video at a small size and samples, every ``--every`` frames
and at frames 100, 1000 and 10,000: the RSS now and its peak since the previous sample, CUDA
allocated / reserved memory, the time per frame, and the memory bank's size (working and
long-term elements, consolidations, prunings). The bank is read through an observing subclass
of ``VideoPropagator`` that only records the instance the engine creates; it changes nothing.

    python benchmarks/bench_memory.py                          # 10,000 frames on GPU, 2,000 on CPU
    python benchmarks/bench_memory.py --device cpu --size 112 --frames 2000

Writes ``benchmarks/results/colorize_memory_<device>_<date>.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    MIB, FramePool, OtherLoad, PeakSampler, colourful_reference, current_rss,
    environment, load_average, markdown_table, process_max_rss, today, weights_file, write_result,
    add_run_arguments,
)

logger = logging.getLogger("bench_memory")
MILESTONES = (100, 1000, 10_000)


@contextlib.contextmanager
def observed_propagators() -> Iterator[list]:
    """Record every ``VideoPropagator`` the engine builds while the context is open."""
    import colorize.propagation as propagation

    original = propagation.VideoPropagator
    seen: list = []

    class ObservedPropagator(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    propagation.VideoPropagator = ObservedPropagator
    try:
        yield seen
    finally:
        propagation.VideoPropagator = original


def _bank(seen: list) -> dict:
    if not seen:
        return {}
    propagator = seen[-1]
    memory = getattr(propagator, "memory", None)
    try:
        return {"working_elements": memory.work.size, "long_term_elements": memory.long.size,
                "consolidations": memory.compressions, "prunings": memory.prunings,
                "value_encodes": propagator.value_encodes}
    except AttributeError:  # the engine's internals changed: report what we still can
        return {}


def sample_points(frames: int, every: int) -> set[int]:
    points = set(range(every, frames + 1, every)) | {m for m in MILESTONES if m <= frames}
    return points | {frames}


def run(weights: Path, weights_label: str, args) -> dict:
    import torch

    from colorize.engine import EngineConfig, build_colorizer

    from dataclasses import replace

    from colorize.engine import MemorySettings

    memory = MemorySettings()
    if args.long_term_elements is not None:
        memory = replace(memory, max_long_term_elements=args.long_term_elements)
    colorizer = build_colorizer(EngineConfig(weights=weights, device=args.device,
                                             precision=args.precision, memory=memory))
    device = colorizer.device
    cuda = device.type == "cuda"
    height, width = args.height, args.width
    pool = FramePool(height, width, distinct=16)
    reference = colourful_reference(height, width)
    points = sample_points(args.frames, args.every)
    name = torch.cuda.get_device_name(device) if cuda else device.type
    document = {
        "benchmark": "colorize-memory",
        "environment": environment(name),
        "weights": weights_label,
        "settings": {"frames": args.frames, "size": f"{width}x{height}", "mode": args.mode,
                     "precision": colorizer.precision, "every": args.every,
                     "max_long_term_elements": memory.max_long_term_elements,
                     "num_prototypes": memory.num_prototypes},
        "samples": [],
    }
    # A non-default bound gets its own file name, so it never replaces the default run.
    suffix = "" if args.long_term_elements is None else f"_lt{args.long_term_elements}"
    stem = args.out / f"colorize_memory_{device.type}_{today()}{suffix}"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with observed_propagators() as seen, PeakSampler(interval=0.05) as sampler:
        produce = colorizer.colorize if args.mode == "colorize" else colorizer.predict
        started = last_time = time.perf_counter()
        last_index = 0
        sampler.take_max_rss()
        others = OtherLoad().start()
        for index, _ in enumerate(produce(pool.video(args.frames), reference), start=1):
            if index not in points:
                continue
            now = time.perf_counter()
            others.stop()
            sample = {
                "frame": index,
                "elapsed_s": now - started,
                "s_per_frame": (now - last_time) / (index - last_index),
                "rss_mb": current_rss() / MIB,
                "peak_rss_since_last_sample_mb": sampler.take_max_rss() / MIB,
                "other_processes_cpu_share": others.share,
                **_bank(seen),
            }
            if cuda:
                sample.update(cuda_allocated_mib=torch.cuda.memory_allocated(device) / MIB,
                              cuda_reserved_mib=torch.cuda.memory_reserved(device) / MIB,
                              cuda_max_allocated_mib=torch.cuda.max_memory_allocated(device) / MIB)
            document["samples"].append(sample)
            logger.info("frame %d: %.0f MB RSS, %.3f s/frame", index, sample["rss_mb"],
                        sample["s_per_frame"])
            last_time, last_index = now, index
            others = OtherLoad().start()
            if index in MILESTONES or len(document["samples"]) % 5 == 0:
                _write(document, stem)
    document["summary"] = _summary(document["samples"], cuda)
    document["process_max_rss_mb"] = process_max_rss() / MIB
    document["plan"] = colorizer.last_plan.describe() if colorizer.last_plan else None
    document["events"] = list(colorizer.events)
    document["load_average_end"] = load_average()
    _write(document, stem)
    return document


def _summary(samples: list[dict], cuda: bool) -> dict:
    """Growth from the first sample at or after frame 100 to the end of the video."""
    after = [s for s in samples if s["frame"] >= 100] or samples
    if not after:
        return {}
    first = after[0]
    summary = {
        "from_frame": first["frame"], "to_frame": samples[-1]["frame"],
        "rss_at_start_mb": first["rss_mb"],
        "rss_peak_at_start_mb": first["peak_rss_since_last_sample_mb"],
        "rss_max_after_mb": max(s["peak_rss_since_last_sample_mb"] for s in after[1:] or after),
        "rss_end_mb": samples[-1]["rss_mb"],
    }
    summary["rss_growth_mb"] = summary["rss_max_after_mb"] - summary["rss_peak_at_start_mb"]
    if cuda:
        summary.update(cuda_allocated_start_mib=first["cuda_allocated_mib"],
                       cuda_allocated_end_mib=samples[-1]["cuda_allocated_mib"],
                       cuda_max_allocated_mib=samples[-1]["cuda_max_allocated_mib"])
    return summary


def _markdown(document: dict) -> str:
    env, settings = document["environment"], document["settings"]
    lines = [
        f"# colorize: memory over a long video ({env['date'][:10]})",
        "",
        f"{env['device']} ({env['cpu']}, {env['logical_cpus']} logical CPUs), "
        f"torch {env['torch']}, "
        f"Python {env['python']}, code {env['git_commit']}"
        + (" with uncommitted changes in colorize/"
           if env["colorize_has_uncommitted_changes"] else "")
        + f". Weights: {document['weights']}.",
        f"One synthetic video of {settings['frames']} frames at {settings['size']}, "
        f"{settings['precision']}, engine `{settings['mode']}`. Load average at start "
        f"{env['load_average_start']}, at end "
        f"{document.get('load_average_end', 'n/a (run in progress)')}.",
        "",
    ]
    cuda = any("cuda_allocated_mib" in s for s in document["samples"])
    headers = ["frame", "elapsed s", "s/frame", "others' CPU", "RSS MB", "peak RSS since last MB",
               "working elements", "long-term elements", "consolidations", "prunings"]
    if cuda:
        headers += ["CUDA allocated MiB", "CUDA reserved MiB", "CUDA max allocated MiB"]
    rows = []
    for s in document["samples"]:
        share = s.get("other_processes_cpu_share")
        row = [s["frame"], s["elapsed_s"], s["s_per_frame"],
               None if share is None else f"{100 * share:.0f}%", round(s["rss_mb"]),
               round(s["peak_rss_since_last_sample_mb"]), s.get("working_elements"),
               s.get("long_term_elements"), s.get("consolidations"), s.get("prunings")]
        if cuda:
            row += [round(s["cuda_allocated_mib"]), round(s["cuda_reserved_mib"]),
                    round(s["cuda_max_allocated_mib"])]
        rows.append(row)
    lines.append(markdown_table(headers, rows))
    summary = document.get("summary")
    if summary:
        lines += ["", f"From frame {summary['from_frame']} to {summary['to_frame']}: peak RSS "
                  f"{summary['rss_max_after_mb']:.0f} MB after frame {summary['from_frame']} "
                  f"against {summary['rss_peak_at_start_mb']:.0f} MB up to it (growth "
                  f"{summary['rss_growth_mb']:+.0f} MB); RSS {summary['rss_at_start_mb']:.0f} MB "
                  f"at frame {summary['from_frame']} and {summary['rss_end_mb']:.0f} MB "
                  "at the end."]
        if "cuda_allocated_start_mib" in summary:
            lines.append(f"CUDA allocated {summary['cuda_allocated_start_mib']:.0f} MiB at "
                         f"frame {summary['from_frame']}, "
                         f"{summary['cuda_allocated_end_mib']:.0f} MiB at the end; max allocated "
                         f"{summary['cuda_max_allocated_mib']:.0f} MiB.")
    bound = settings.get("max_long_term_elements")
    room = settings.get("num_prototypes", 128)
    full = [s for s in document["samples"]
            if bound and (s.get("long_term_elements") or 0) + room >= bound]
    if bound and full:
        largest = max(s["long_term_elements"] + s["working_elements"] for s in full)
        lines.append(f"The long-term memory reached its bound ({bound} elements, less room for "
                     f"one consolidation) by frame {full[0]['frame']}; after that the bank held "
                     f"at most {largest} elements.")
    elif bound:
        lines.append(f"The long-term memory did not reach its bound ({bound} elements) in this "
                     "run: a longer video (or a smaller --long-term-elements) shows the bounded "
                     "part.")
    if document.get("events"):
        lines.append("Engine events: " + "; ".join(document["events"]))
    return "\n".join(lines) + "\n"


def _write(document: dict, stem: Path) -> None:
    write_result(stem, document, _markdown(document))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, device_default="auto")
    parser.add_argument("--width", type=int, help="frame width (overrides --size)")
    parser.add_argument("--height", type=int, help="frame height (overrides --size)")
    parser.add_argument("--frames", type=int,
                        help="video length (default 10000 on GPU, 2000 on CPU)")
    parser.add_argument("--every", type=int, help="sample every N frames (default frames / 20)")
    parser.add_argument("--long-term-elements", type=int,
                        help="long-term memory bound (default: the official 10000)")
    parser.add_argument("--mode", choices=("colorize", "predict"), default="colorize",
                        help="end to end to RGB arrays (default) or the model only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no usable CUDA GPU here; use --device cpu")
    args.width = args.width or args.size
    args.height = args.height or args.size
    if args.frames is None:
        args.frames = 10_000 if args.device == "cuda" else 2_000
    if args.frames < 1:
        raise SystemExit("--frames must be at least 1")
    args.every = args.every or max(1, args.frames // 20)
    with weights_file(args.weights) as (weights, weights_label):
        document = run(weights, weights_label, args)
    print(_markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
