"""A 200-job ``comfy-run batch`` over 3 loopback fake ComfyUI servers: all done, none duplicated.

Each job is the small EmptyImage -> ImageInvert -> SaveImage workflow with its own width and
colour, so the servers' caches never short-cut a job. Every fake node takes ``--node-delay``
seconds, so the servers' queues really fill up and the least-pending choice matters. Reports
jobs/s, per-job latency percentiles, how the jobs spread over the servers, and checks that the
servers executed exactly one prompt per job (no duplicates, none lost). A second run on the same
output folder must skip every job (resume). Writes ``benchmarks/results/bench_batch.{json,md}``.

    python benchmarks/bench_batch.py [--jobs 200] [--servers 3] [--node-delay 0.005]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "runner"))

from fake_server import FakeComfyServer, FakeConfig  # noqa: E402

from runner.batch import MANIFEST_NAME, BatchOptions, ClientBackend, run_batch  # noqa: E402

WORKFLOW = ROOT / "tests" / "runner" / "fixtures" / "workflows" / "01_empty_invert_save.api.json"
RESULTS = ROOT / "benchmarks" / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def executed_prompt_ids(server: FakeComfyServer) -> list[str]:
    """What the server ran, read back over HTTP (history keys)."""
    return list(requests.get(f"{server.url}/history", timeout=10).json())


def posts(server: FakeComfyServer) -> int:
    return sum(1 for method, path, _ in server.requests if method == "POST" and path.endswith("/prompt"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--node-delay", type=float, default=0.005, help="seconds per fake node (3 nodes per job)")
    parser.add_argument("--concurrency", type=int, default=None, help="jobs in flight [default: 2 per server]")
    parser.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args()

    servers = [FakeComfyServer(FakeConfig(node_delay=args.node_delay)).start() for _ in range(args.servers)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_dir = Path(tmp)
            params = tmp_dir / "params.jsonl"
            params.write_text("".join(
                json.dumps({"1.width": 8 + (i % 64), "1.color": i, "3.filename_prefix": f"bench/job{i:04d}"}) + "\n"
                for i in range(args.jobs)
            ))
            out = tmp_dir / "out"
            backend = ClientBackend(poll_interval=args.poll_interval, timeout=120)
            try:
                started = time.perf_counter()
                result = run_batch(str(WORKFLOW), params, backend,
                                   BatchOptions([s.url for s in servers], out, concurrency=args.concurrency))
                elapsed = time.perf_counter() - started
                resume_started = time.perf_counter()
                again = run_batch(str(WORKFLOW), params, backend,
                                  BatchOptions([s.url for s in servers], out, concurrency=args.concurrency))
                resume_elapsed = time.perf_counter() - resume_started
            finally:
                backend.close()
            manifest = json.loads((out / MANIFEST_NAME).read_text())
            files_ok = all(
                (out / o["path"]).is_file() for job in manifest["jobs"].values() for o in job["outputs"] if o.get("path")
            )
        executed = [pid for s in servers for pid in executed_prompt_ids(s)]
        per_server = {f"server{i + 1}": len(executed_prompt_ids(s)) for i, s in enumerate(servers)}
        total_posts = sum(posts(s) for s in servers)
    finally:
        for server in servers:
            server.stop()

    latencies = [r.seconds for r in result.records]
    succeeded = sum(1 for r in result.records if r.status == "success")
    recorded_ids = [r.prompt_id for r in result.records]
    figures = {
        "jobs": args.jobs,
        "servers": args.servers,
        "node_delay_s": args.node_delay,
        "concurrency": args.concurrency or 2 * args.servers,
        "succeeded": succeeded,
        "prompts_executed": len(executed),
        "distinct_prompts_executed": len(set(executed)),
        "prompt_posts": total_posts,
        "manifest_jobs": len(manifest["jobs"]),
        "manifest_prompt_ids_match_servers": sorted(recorded_ids) == sorted(executed),
        "output_files_present": files_ok,
        "per_server": per_server,
        "wall_s": round(elapsed, 3),
        "jobs_per_s": round(args.jobs / elapsed, 2),
        "job_latency_s": {
            "median": round(statistics.median(latencies), 4),
            "p90": round(percentile(latencies, 0.9), 4),
            "max": round(max(latencies), 4),
        },
        "resume_wall_s": round(resume_elapsed, 3),
        "resume_skipped": sum(1 for r in again.records if r.status == "skipped"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    ok = (
        succeeded == args.jobs
        and len(executed) == args.jobs
        and len(set(executed)) == args.jobs
        and total_posts == args.jobs
        and figures["manifest_prompt_ids_match_servers"]
        and files_ok
        and figures["resume_skipped"] == args.jobs
    )
    figures["all_done_none_duplicated"] = ok

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_batch.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = [
        "# Batch benchmark: jobs over loopback fake ComfyUI servers",
        "",
        f"{args.jobs} jobs, {args.servers} servers, {figures['concurrency']} in flight, "
        f"fake node time {args.node_delay * 1000:.1f} ms x 3 nodes per job.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| all done, none duplicated | {'yes' if ok else 'NO'} |",
        f"| succeeded | {succeeded} / {args.jobs} |",
        f"| prompts executed (distinct) | {len(executed)} ({len(set(executed))}) |",
        f"| POST /prompt sent | {total_posts} |",
        f"| per server | {', '.join(f'{k}: {v}' for k, v in per_server.items())} |",
        f"| wall time | {figures['wall_s']} s |",
        f"| throughput | {figures['jobs_per_s']} jobs/s |",
        f"| job latency median / p90 / max | {figures['job_latency_s']['median']} / "
        f"{figures['job_latency_s']['p90']} / {figures['job_latency_s']['max']} s |",
        f"| resume run (all skipped) | {figures['resume_skipped']} skipped in {figures['resume_wall_s']} s |",
        "",
        f"Python {figures['python']} on {figures['machine']}.",
    ]
    (RESULTS / "bench_batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
