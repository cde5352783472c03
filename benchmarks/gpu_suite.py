"""Everything a lent GPU should measure, in one command that fits in about 8 minutes.

    python benchmarks/gpu_suite.py                 # on the GPU, synthetic weights
    python benchmarks/gpu_suite.py --smoke         # a tiny run of every step on the CPU

Steps, each written to the results as soon as it is done (a cut run keeps what it measured):

1. table: speed and memory, fp16 / bf16 / fp32 at 960x536, 1080p and 4K, under a 16 GB cap
   (colorize_bench_gpu's emulated card: allocator fraction + the planner told the free memory);
2. vram: device memory after 200 and after 2,000 frames of one video (bench_memory's sampler),
   which must not grow with the length;
3. backoff: out-of-memory back-off under an artificial cap: a 4K video with the planner told it
   has plenty and the allocator capped at 3 GiB, so the engine meets real allocator failures
   and must halve its chunk / lower its processing size and finish;
4. golden: fp16 and bf16 against fp32 PSNR on the golden cases (tests/fixtures/golden).

Results: ``benchmarks/results/gpu_suite_<device>_<date>.{json,md}`` naming the device (and the
table step's own ``colorize_gpu_<date>_suite.*``). ``--smoke`` runs the same steps on the CPU at
toy sizes (the allocator cap becomes an injected out-of-memory error) so that CI checks the
script; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    GIB, RESULTS_DIR, FramePool, colourful_reference, environment, golden_psnr,
    load_average, markdown_table, today, weights_file, write_result,
)

BUDGET_S = 8 * 60
FULL = {
    "resolutions": [("960x536", 536, 960), ("1080p", 1080, 1920), ("4K", 2160, 3840)],
    "precisions": ["fp16", "bf16", "fp32"], "cap_gb": 16, "frames": 16, "warmup": 4,
    "vram_size": (536, 960), "vram_frames": (200, 2000),
    "backoff_size": (2160, 3840), "backoff_cap_gb": 3.0, "backoff_frames": 6,
    "golden_cases": ("P1", "P2"), "golden_frames": None,
}
SMOKE = {
    "resolutions": [("tiny", 48, 64)], "precisions": ["fp32", "bf16"], "cap_gb": None,
    "frames": 2, "warmup": 1, "vram_size": (48, 64), "vram_frames": (4, 8),
    "backoff_size": (48, 64), "backoff_cap_gb": None, "backoff_frames": 3,
    "golden_cases": ("P1",), "golden_frames": 3,
}


# -- steps ----------------------------------------------------------------------------------

def table_step(weights: Path, label: str, device: str, plan: dict, out: Path) -> dict:
    """Speed and memory per resolution and precision (under the cap on a GPU)."""
    if device == "cuda":
        from colorize_bench_gpu import GpuSettings, run_gpu_benchmark

        settings = GpuSettings(resolutions=plan["resolutions"], precisions=plan["precisions"],
                               caps_gb=[plan["cap_gb"]], frames=plan["frames"],
                               warmup_frames=plan["warmup"], frames_for_psnr=0, out=out,
                               device="cuda", plot=False, suffix="_suite")
        document = run_gpu_benchmark(weights, label, settings)
        return {"rows": document["results"], "startup_s": document["startup_s"]}
    from colorize.engine import EngineConfig, build_colorizer

    rows = []
    for precision in plan["precisions"]:
        colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision=precision))
        for name, height, width in plan["resolutions"]:
            pool, reference = FramePool(height, width, 4), colourful_reference(height, width)
            list(colorizer.colorize(pool.video(plan["warmup"]), reference))
            started = time.perf_counter()
            count = sum(1 for _ in colorizer.colorize(pool.video(plan["frames"]), reference))
            rows.append({"resolution": name, "size": f"{width}x{height}", "precision": precision,
                         "cap": "none", "status": "ok",
                         "e2e_fps": count / (time.perf_counter() - started)})
    return {"rows": rows}


def vram_step(weights: Path, label: str, device: str, plan: dict, out: Path) -> dict:
    """Memory after the short and after the long length of one video (bench_memory.run)."""
    import bench_memory

    short, long = plan["vram_frames"]
    height, width = plan["vram_size"]
    args = Namespace(device=device, precision="auto", long_term_elements=None, width=width,
                     height=height, frames=long, every=short, mode="predict", out=out)
    document = bench_memory.run(weights, label, args)
    key = "cuda_max_allocated_mib" if device == "cuda" else "rss_mb"
    at = {sample["frame"]: sample.get(key) for sample in document["samples"]}
    return {"measure": key, "size": f"{width}x{height}", "short_frames": short,
            "long_frames": long, "at_short_mib": at.get(short), "at_long_mib": at.get(long),
            "precision": document["settings"]["precision"]}


def backoff_step(weights: Path, label: str, device: str, plan: dict, out: Path) -> dict:
    """The engine under memory it was not told about: it must back off and finish."""
    import torch

    from colorize.engine import EngineConfig, build_colorizer

    height, width = plan["backoff_size"]
    config = EngineConfig(weights=weights, device=device, precision="auto", chunk_size=8,
                          memory_limit_bytes=1 << 40)       # the planner thinks it has 1 TiB
    colorizer = build_colorizer(config)
    restore = None
    if device == "cuda":
        total = torch.cuda.mem_get_info()[1]
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(plan["backoff_cap_gb"] * GIB / total)
        cap = f"{plan['backoff_cap_gb']:g} GiB allocator cap"
    else:
        # No allocator cap on the CPU: key encoding of more than one frame at once fails as
        # an allocator would, which takes the same back-off path.
        encode = colorizer.network.encode_key

        def failing(images, *args, **kwargs):
            if images.shape[0] > 1:
                raise RuntimeError("CPU out of memory (injected by gpu_suite --smoke)")
            return encode(images, *args, **kwargs)

        colorizer.network.encode_key = failing
        restore = lambda: setattr(colorizer.network, "encode_key", encode)  # noqa: E731
        cap = "out of memory injected above one frame per chunk"
    pool, reference = FramePool(height, width, 4), colourful_reference(height, width)
    started = time.perf_counter()
    try:
        count = sum(1 for _ in colorizer.colorize(pool.video(plan["backoff_frames"]), reference))
        status, message = "ok", ""
    except Exception as error:  # the finding is the error itself
        count, status = 0, "failed"
        message = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"[:300]
    finally:
        if device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.empty_cache()
        if restore is not None:
            restore()
    plan_after = colorizer.last_plan
    return {"size": f"{width}x{height}", "cap": cap, "status": status, "message": message,
            "frames": count, "seconds": time.perf_counter() - started,
            "events": list(colorizer.events),
            "final_processing_size": (f"{plan_after.processing_size[1]}x"
                                      f"{plan_after.processing_size[0]}" if plan_after else None)}


def golden_step(weights: Path, label: str, device: str, plan: dict, out: Path) -> dict:
    precisions = [p for p in ("fp16", "bf16") if p in plan["precisions"] or device == "cuda"]
    return {precision: golden_psnr(weights, device, precision, plan["golden_cases"],
                                   plan["golden_frames"])
            for precision in precisions}


STEPS = [("table", table_step), ("vram", vram_step), ("backoff", backoff_step),
         ("golden", golden_step)]


# -- the run ---------------------------------------------------------------------------------

def device_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def run(args) -> tuple[dict, Path]:
    import torch

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --smoke to check the script on the CPU")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke)"
    plan = SMOKE if args.smoke else FULL
    document = {"benchmark": "gpu_suite", "smoke": args.smoke,
                "environment": environment(name), "budget_s": args.budget_s, "steps": {}}
    if device == "cuda":
        document["environment"]["total_memory_gib"] = torch.cuda.mem_get_info()[1] / GIB
    stem = args.out / f"gpu_suite_{device_slug(name)}_{today()}"
    started = time.perf_counter()
    with weights_file(args.weights) as (weights, label):
        document["weights"] = label
        for step, function in STEPS:
            if args.only and step not in args.only:
                continue
            elapsed = time.perf_counter() - started
            if elapsed > args.budget_s:
                document["steps"][step] = {"status": "skipped",
                                           "message": f"budget of {args.budget_s} s spent"}
                continue
            step_started = time.perf_counter()
            print(f"[{elapsed:5.0f} s] {step} ...", flush=True)
            try:
                result = function(weights, label, device, plan, args.out)
                result = {"status": "ok", **result} if isinstance(result, dict) else result
            except Exception as error:  # keep the other steps' results
                result = {"status": "failed",
                          "message": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"}
            document["steps"][step] = {**result, "seconds": time.perf_counter() - step_started}
            document["load_average_end"] = load_average()
            write_result(stem, document, markdown(document))
    document["total_s"] = time.perf_counter() - started
    write_result(stem, document, markdown(document))
    return document, stem


def markdown(document: dict) -> str:
    env, steps = document["environment"], document["steps"]
    lines = [f"# GPU suite on {env['device']}" + (" (smoke run on the CPU: figures mean nothing)"
                                                   if document["smoke"] else ""), "",
             f"{env['date']}, torch {env['torch']}, code {env['git_commit']}"
             + (" with uncommitted changes" if env["colorize_has_uncommitted_changes"] else "")
             + f". Weights: {document.get('weights', '?')}. Load average at start "
             f"{env['load_average_start']}, at end {document.get('load_average_end')}.", ""]
    table = steps.get("table", {})
    lines += ["## 1. Speed and memory", ""]
    if table.get("rows"):
        lines.append(markdown_table(
            ["resolution", "precision", "cap", "status", "e2e fps", "model fps", "peak reserved GiB",
             "max used on card GiB", "note"],
            [[r.get("size", r["resolution"]), r["precision"], r.get("cap"), r["status"],
              r.get("e2e_fps"), r.get("model_fps"), r.get("e2e_peak_reserved_gib"),
              r.get("max_device_used_gib"), r.get("message") or "; ".join(r.get("events") or [])]
             for r in table["rows"]]))
    else:
        lines.append(_status(table))
    vram = steps.get("vram", {})
    lines += ["", "## 2. Memory against video length", ""]
    if vram.get("status") == "ok":
        lines.append(f"{vram['size']} ({vram['precision']}), {vram['measure']}: "
                     f"{_mib(vram['at_short_mib'])} after {vram['short_frames']} frames, "
                     f"{_mib(vram['at_long_mib'])} after {vram['long_frames']}.")
    else:
        lines.append(_status(vram))
    backoff = steps.get("backoff", {})
    lines += ["", "## 3. Out-of-memory back-off", ""]
    if backoff.get("status") == "ok":
        lines.append(f"{backoff['size']}, {backoff['cap']}, chunk 8 asked for: finished "
                     f"{backoff['frames']} frames, processing "
                     f"{backoff['final_processing_size']}. Engine events: "
                     f"{'; '.join(backoff['events']) or 'none'}.")
    else:
        lines.append(_status(backoff))
    golden = steps.get("golden", {})
    lines += ["", "## 4. Half precision against fp32 on the golden cases", ""]
    cases = [[precision, case["case"], case["frames"], case["min_db"], case["mean_db"]]
             for precision, rows in golden.items() if isinstance(rows, list) for case in rows]
    lines.append(markdown_table(["precision", "case", "frames", "min PSNR dB", "mean PSNR dB"], cases)
                 if cases else _status(golden))
    lines += ["", f"Total {document.get('total_s', 0):.0f} s of a {document['budget_s']} s budget; "
              "step times: " + ", ".join(f"{name} {step.get('seconds', 0):.0f} s"
                                         for name, step in steps.items()), ""]
    return "\n".join(lines)


def _status(step: dict) -> str:
    return f"{step.get('status', 'not run')}: {step.get('message', '')}".rstrip(": ")


def _mib(value) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run of every step on the CPU")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: synthetic weights)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help="skip the steps not yet started after this many seconds")
    parser.add_argument("--only", nargs="+", choices=[name for name, _ in STEPS])
    args = parser.parse_args(argv)
    document, stem = run(args)
    print(markdown(document))
    print(f"written: {stem}.json, {stem}.md")
    failed = [name for name, step in document["steps"].items() if step.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
