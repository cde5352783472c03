"""Client overhead per prompt of ``runner.ComfyClient`` against the loopback fake ComfyUI server.

For each mode (websocket signal; history polling only) it runs N small prompts one after another
and measures, per prompt, the wall time from ``submit`` to a finished result (plus the download of
its one output), and subtracts the server's own execution time taken from the history entry. The
rest is client + transport overhead. Prints a table and writes
``benchmarks/results/bench_client.{json,md}``.

    python benchmarks/bench_client.py [--prompts 200] [--poll-interval 0.02]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "runner"))

from fake_server import FakeComfyServer, FakeConfig  # noqa: E402

from runner import ComfyClient  # noqa: E402
from runner.client.outputs import collect_outputs  # noqa: E402

WORKFLOW = json.loads((ROOT / "tests" / "runner" / "data" / "01_empty_invert_save.api.json").read_text())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_mode(server: FakeComfyServer, prompts: int, use_websocket: bool, poll_interval: float, download: bool) -> dict:
    latencies, overheads = [], []
    with ComfyClient(server.url, poll_interval=poll_interval, use_websocket=use_websocket) as client, \
            tempfile.TemporaryDirectory() as tmp:
        client.run(WORKFLOW)  # warm up connections
        started = time.perf_counter()
        for index in range(prompts):
            workflow = json.loads(json.dumps(WORKFLOW))
            workflow["1"]["inputs"]["color"] = index  # defeat the server cache: every prompt executes
            t0 = time.perf_counter()
            result = client.run(workflow, timeout=30)
            if download:
                collect_outputs(client, result, Path(tmp) / result.prompt_id)
            elapsed = time.perf_counter() - t0
            assert result.ok, result.message
            latencies.append(elapsed)
            overheads.append(elapsed - result.timings.get("execution_s", 0.0))
        total = time.perf_counter() - started
    return {
        "mode": ("websocket" if use_websocket else f"polling every {poll_interval * 1000:.0f} ms") + (" + download" if download else ""),
        "prompts": prompts,
        "prompts_per_s": round(prompts / total, 1),
        "latency_ms_median": round(statistics.median(latencies) * 1000, 2),
        "latency_ms_p95": round(percentile(latencies, 0.95) * 1000, 2),
        "overhead_ms_median": round(statistics.median(overheads) * 1000, 2),
        "overhead_ms_p95": round(percentile(overheads, 0.95) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    rows = []
    with FakeComfyServer(FakeConfig()) as server:
        rows.append(bench_mode(server, args.prompts, True, 1.0, False))
        rows.append(bench_mode(server, args.prompts, True, 1.0, True))
        rows.append(bench_mode(server, args.prompts, False, args.poll_interval, False))
    report = {"benchmark": "comfy-run client overhead per prompt (loopback fake server, zero-time nodes)",
              "python": platform.python_version(), "machine": platform.machine(), "platform": platform.platform(),
              "results": rows}
    header = "| mode | prompts | prompts/s | latency median ms | latency p95 ms | overhead median ms | overhead p95 ms |"
    lines = [header, "|" + "---|" * 7]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['prompts']} | {row['prompts_per_s']} | {row['latency_ms_median']} | "
                     f"{row['latency_ms_p95']} | {row['overhead_ms_median']} | {row['overhead_ms_p95']} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_client.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "bench_client.md").write_text(
        f"# {report['benchmark']}\n\nPython {report['python']} on {report['platform']}.\n"
        "Overhead = wall time from submit to finished result minus the server's own execution time "
        "(history timestamps).\n\n" + table + "\n")


if __name__ == "__main__":
    main()
