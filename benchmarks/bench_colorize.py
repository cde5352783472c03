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
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import RESULTS_DIR, weights_file  # noqa: E402
from colorize_bench_cpu import (  # noqa: E402
    CPU_FULL_SIZES, CPU_SIZES, CpuSettings, Quiet, cpu_markdown, run_cpu_benchmark,
)
from colorize_bench_gpu import (  # noqa: E402
    GPU_CAPS_GB, GPU_RESOLUTIONS, GpuSettings, gpu_markdown, run_gpu_benchmark,
)

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
    parser.add_argument("--wait-quiet", type=float, default=600.0, metavar="SECONDS",
                        help="CPU: before each run wait up to this long for other processes "
                             "to go quiet (default 600; 0: do not wait)")
    parser.add_argument("--attempts", type=int, default=3,
                        help="CPU: measure a run again (up to this many times in all) when "
                             "other processes used over 10%% of the CPUs during it")
    parser.add_argument("--resolutions",
                        help="comma list; GPU: 480p,512x768,960x536,720p,1080p,4K; "
                             "CPU: 224x224,448x448,864x480")
    parser.add_argument("--precisions", default="fp32,fp16",
                        help="GPU: comma list of fp32,fp16,bf16")
    parser.add_argument("--caps",
                        help="GPU: comma list of GB caps and/or 'full' (6,8,12,16,24,full)")
    parser.add_argument("--psnr-frames", type=int, default=8,
                        help="GPU: frames kept at full card to compare half precision with fp32")
    parser.add_argument("--chunk", type=int,
                        help="fixed key-encoding chunk (default: the planner's)")
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

    # Partial or non-default runs get their own file names, so they never replace a full table.
    suffix = "".join(part for part, wanted in (
        ("_quick", args.quick), (f"_chunk{args.chunk}", args.chunk is not None),
        ("_subset", bool(args.resolutions or args.caps or args.precisions != "fp32,fp16")),
    ) if wanted)
    with weights_file(args.weights) as (weights, weights_label):
        if device == "cpu":
            settings = CpuSettings(
                sizes=(_pick(CPU_FULL_SIZES, args.resolutions) if args.resolutions
                       else CPU_SIZES[:1] if args.quick
                       else CPU_FULL_SIZES if args.full else CPU_SIZES),
                timed_frames=args.frames or (4 if args.quick else 12),
                warmup_frames=args.warmup if args.warmup is not None else (1 if args.quick else 2),
                bf16=not args.no_bf16, out=args.out, plot=not args.no_plot, chunk_size=args.chunk,
                quiet=Quiet(wait_s=args.wait_quiet, attempts=args.attempts), suffix=suffix)
            document = run_cpu_benchmark(weights, weights_label, settings)
            print(cpu_markdown(document))
        else:
            settings = GpuSettings(
                resolutions=_pick(GPU_RESOLUTIONS,
                                  args.resolutions or ("480p,1080p" if args.quick else None)),
                precisions=[p.strip() for p in args.precisions.split(",") if p.strip()]
                if not args.quick else ["fp16"],
                caps_gb=_caps(args.caps or ("8,full" if args.quick else None)),
                frames=args.frames or (16 if args.quick else 48),
                warmup_frames=args.warmup if args.warmup is not None else 4,
                frames_for_psnr=args.psnr_frames, out=args.out, device=device,
                plot=not args.no_plot, chunk_size=args.chunk, suffix=suffix)
            document = run_gpu_benchmark(weights, weights_label, settings)
            print(gpu_markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
