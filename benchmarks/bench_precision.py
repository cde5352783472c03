"""fp32 against bf16 (and fp16) on the CPU: seconds per frame and PSNR against fp32.

``auto`` picks bf16 on a CPU with native bfloat16 (AMX-BF16, AVX512-BF16); this measures what
that buys and costs on the machine it runs on: the engine's steady-state time per frame at
``--size`` (square, default 448) with ``--threads`` threads (default 2), and each precision's
PSNR against the fp32 output on the same synthetic video, per frame (the minimum is reported).
``--golden`` adds the same PSNR on the golden cases (tests/fixtures/golden).

Timing figures depend on the machine's load: the load average before and after is recorded
next to them, and the Markdown says when the machine was busy.

    python benchmarks/bench_precision.py                      # fp32 and bf16 at 448x448
    python benchmarks/bench_precision.py --precisions fp32 bf16 fp16 --golden
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from colorize_bench_common import (
    RESULTS_DIR, FramePool, colourful_reference, environment, golden_psnr,
    load_average, markdown_table, psnr, today, was_busy, weights_file, write_result,
)



def measure(weights: Path, precision: str, size: int, frames: int) -> dict:
    """Steady-state seconds per frame (the first frame excluded) and the frames made."""
    from colorize.engine import EngineConfig, build_colorizer

    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision=precision))
    pool = FramePool(size, size, distinct=frames)
    stamps, outputs = [], []
    started = time.perf_counter()
    for frame in colorizer.colorize(pool.video(frames), colourful_reference(size, size)):
        stamps.append(time.perf_counter() - started)
        outputs.append(frame)
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    return {"precision": precision, "first_frame_s": stamps[0], "s_per_frame": steady,
            "frames": len(outputs), "outputs": outputs}


def run(args) -> dict:
    import torch

    from colorize.devices import cpu_native_bf16

    torch.set_num_threads(args.threads)
    env = environment("cpu")
    env["native_bf16"] = cpu_native_bf16()
    rows = []
    with weights_file(args.weights) as (weights, label):
        env["weights"] = label
        results = [measure(weights, precision, args.size, args.frames)
                   for precision in args.precisions]
        baseline = next((r["outputs"] for r in results if r["precision"] == "fp32"), None)
        for result in results:
            outputs = result.pop("outputs")
            if baseline is not None and result["precision"] != "fp32":
                per_frame = [psnr(a, b, 255.0) for a, b in zip(baseline, outputs)]
                result["psnr_vs_fp32_min_db"] = min(per_frame)
                result["psnr_vs_fp32_per_frame_db"] = per_frame
            rows.append(result)
        golden = {}
        if args.golden:
            for precision in args.precisions:
                if precision != "fp32":
                    golden[precision] = golden_psnr(weights, "cpu", precision)
    env["load_average_end"] = load_average()
    return {"benchmark": "bench_precision", "environment": env, "size": args.size,
            "threads": args.threads, "frames": args.frames, "results": rows, "golden": golden}


def markdown(document: dict) -> str:
    env = document["environment"]
    size, threads = document["size"], document["threads"]
    loads = [env.get("load_average_start"), env.get("load_average_end")]
    # The load at the end includes this benchmark's own threads.
    busy = was_busy(loads[0], threads) or was_busy(loads[1], threads, own_threads=threads)
    lines = [f"# CPU precision: fp32 against bf16 at {size}x{size}, {threads} threads", "",
             f"CPU: {env['cpu']} ({env['logical_cpus']} logical CPUs), torch {env['torch']}, "
             f"code {env['git_commit']}. Weights: {env.get('weights', '?')}.", "",
             f"Native bfloat16 on this CPU: {env.get('native_bf16') or 'none'} "
             f"(so `auto` means {'bf16' if env.get('native_bf16') else 'fp32'} here).", "",
             f"Load average (1, 5, 15 min) at start {loads[0]}, at end {loads[1]}"
             + (": **taken under shared load; the times are slower and noisier than on an idle "
                "machine, the PSNR figures are not affected.**" if busy else "."), ""]
    table = []
    fp32 = next((r["s_per_frame"] for r in document["results"] if r["precision"] == "fp32"), None)
    for row in document["results"]:
        speedup = fp32 / row["s_per_frame"] if fp32 and row["precision"] != "fp32" else None
        table.append([row["precision"], row["s_per_frame"], speedup, row["first_frame_s"],
                      row.get("psnr_vs_fp32_min_db")])
    lines.append(markdown_table(["precision", "s/frame (steady)", "speed-up vs fp32",
                                 "first frame s", "PSNR vs fp32, min over frames (dB)"], table))
    if document["golden"]:
        lines += ["", "Golden cases (tests/fixtures/golden), PSNR against fp32, min over frames:", ""]
        lines.append(markdown_table(
            ["precision", "case", "frames", "min dB", "mean dB"],
            [[precision, case["case"], case["frames"], case["min_db"], case["mean_db"]]
             for precision, cases in document["golden"].items() for case in cases]))
    lines += ["", f"{document['frames']} frames of a synthetic moving gray video per precision; "
              "`--fp32` gives the official numbers.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="checkpoint (default: synthetic weights)")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--golden", action="store_true", help="also PSNR on the golden cases")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2 (the first one is not timed)")
    document = run(args)
    stem = args.out / f"precision_cpu_{today()}"
    write_result(stem, document, markdown(document))
    print(markdown(document))
    print(f"written: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
