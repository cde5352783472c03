"""``runner.AsyncComfyClient`` against ``runner.ComfyClient`` on the loopback fake ComfyUI server.

Two figures for each client:

* overhead per prompt: N small prompts one after another, the wall time from submit to a finished
  result minus the server's own execution time (history timestamps);
* prompts per second with 100 in flight: the async client runs them with ``asyncio.gather`` on one
  event loop (one client, one websocket, one HTTP pool, no thread); the sync client needs a thread
  per prompt in flight (100 threads, each with its own client, as ``ComfyClient`` is not shared).

The fake server runs in its own process (its threads and the client's do not share one GIL) and
executes prompts one at a time with zero-time nodes, so throughput is bounded by the server and
the clients' per-prompt cost. Prints a table and writes ``benchmarks/results/bench_async_client.{json,md}``
with the CPU and the load average (timings taken on a shared machine are noisy).

    python benchmarks/bench_async_client.py [--prompts 200] [--in-flight 100] [--total 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner import AsyncComfyClient, ComfyClient  # noqa: E402

WORKFLOW = json.loads((ROOT / "tests" / "runner" / "data" / "01_empty_invert_save.api.json").read_text())


def workflow(index: int) -> dict[str, Any]:
    wf = json.loads(json.dumps(WORKFLOW))
    wf["1"]["inputs"]["color"] = index  # defeat the server cache: every prompt executes
    return wf


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def overhead_row(client_name: str, latencies: list[float], overheads: list[float], total: float) -> dict[str, Any]:
    return {"client": client_name, "prompts": len(latencies), "prompts_per_s": round(len(latencies) / total, 1),
            "latency_ms_median": round(statistics.median(latencies) * 1000, 2),
            "overhead_ms_median": round(statistics.median(overheads) * 1000, 2),
            "overhead_ms_p95": round(percentile(overheads, 0.95) * 1000, 2)}


def sequential_sync(url: str, prompts: int, offset: int) -> dict[str, Any]:
    latencies, overheads = [], []
    with ComfyClient(url) as client:
        client.run(workflow(offset - 1), timeout=30)  # warm up the connections
        started = time.perf_counter()
        for index in range(prompts):
            t0 = time.perf_counter()
            result = client.run(workflow(offset + index), timeout=30)
            elapsed = time.perf_counter() - t0
            assert result.ok, result.message
            latencies.append(elapsed)
            overheads.append(elapsed - result.timings.get("execution_s", 0.0))
        total = time.perf_counter() - started
    return overhead_row("ComfyClient", latencies, overheads, total)


async def sequential_async(url: str, prompts: int, offset: int) -> dict[str, Any]:
    latencies, overheads = [], []
    async with AsyncComfyClient(url) as client:
        await client.run(workflow(offset - 1), timeout=30)
        started = time.perf_counter()
        for index in range(prompts):
            t0 = time.perf_counter()
            result = await client.run(workflow(offset + index), timeout=30)
            elapsed = time.perf_counter() - t0
            assert result.ok, result.message
            latencies.append(elapsed)
            overheads.append(elapsed - result.timings.get("execution_s", 0.0))
        total = time.perf_counter() - started
    return overhead_row("AsyncComfyClient", latencies, overheads, total)


def in_flight_sync(url: str, total: int, in_flight: int, offset: int) -> dict[str, Any]:
    local = threading.local()
    clients: list[ComfyClient] = []

    def one(index: int) -> bool:
        if not hasattr(local, "client"):
            local.client = ComfyClient(url)
            clients.append(local.client)
        return local.client.run(workflow(offset + index), timeout=300).ok

    peak = threading.active_count()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        futures = [pool.submit(one, index) for index in range(total)]
        while not all(f.done() for f in futures):
            peak = max(peak, threading.active_count())
            time.sleep(0.05)
        assert all(f.result() for f in futures)
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return {"client": f"ComfyClient, {in_flight} threads", "prompts": total, "in_flight": in_flight,
            "seconds": round(elapsed, 2), "prompts_per_s": round(total / elapsed, 1), "peak_threads": peak}


async def in_flight_async(url: str, total: int, in_flight: int, offset: int) -> dict[str, Any]:
    peak = threading.active_count()
    async with AsyncComfyClient(url, max_connections=in_flight) as client:
        gate = asyncio.Semaphore(in_flight)

        async def one(index: int) -> bool:
            nonlocal peak
            async with gate:
                ok = (await client.run(workflow(offset + index), timeout=300)).ok
            peak = max(peak, threading.active_count())
            return ok

        started = time.perf_counter()
        results = await asyncio.gather(*(one(index) for index in range(total)))
        elapsed = time.perf_counter() - started
    assert all(results)
    return {"client": f"AsyncComfyClient, {in_flight} tasks", "prompts": total, "in_flight": in_flight,
            "seconds": round(elapsed, 2), "prompts_per_s": round(total / elapsed, 1), "peak_threads": peak}


def on_fresh_server(measure: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "runner" / "fake_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        return measure(server.stdout.readline().strip())
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def environment() -> dict[str, Any]:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200, help="prompts one after another, per client")
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--total", type=int, default=400, help="prompts in the in-flight runs, per client")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    # 100 blocking sockets starved of the CPU miss keepalive pings; websockets logs each with a
    # traceback. They do not change the figures, and they would bury the table.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    before = environment()
    # A fresh server process for each measurement: none inherits another's history or sockets.
    sequential = [on_fresh_server(lambda url: sequential_sync(url, args.prompts, 100_000)),
                  on_fresh_server(lambda url: asyncio.run(sequential_async(url, args.prompts, 200_000)))]
    concurrent = [on_fresh_server(lambda url: in_flight_sync(url, args.total, args.in_flight, 300_000)),
                  on_fresh_server(lambda url: asyncio.run(in_flight_async(url, args.total, args.in_flight, 400_000)))]
    after = environment()
    report = {"benchmark": "AsyncComfyClient vs ComfyClient (loopback fake server in its own process, zero-time nodes)",
              "environment": before, "load_average_after": after["load_average"],
              "sequential": sequential, "in_flight": concurrent}
    lines = ["| client | prompts one by one | prompts/s | latency median ms | overhead median ms | overhead p95 ms |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['client']} | {r['prompts']} | {r['prompts_per_s']} | {r['latency_ms_median']} | "
              f"{r['overhead_ms_median']} | {r['overhead_ms_p95']} |" for r in sequential]
    lines += ["", "| client | prompts | in flight | seconds | prompts/s | peak threads in the client process |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['client']} | {r['prompts']} | {r['in_flight']} | {r['seconds']} | {r['prompts_per_s']} | "
              f"{r['peak_threads']} |" for r in concurrent]
    table = "\n".join(lines)
    print(table)
    env = report["environment"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_async_client.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "bench_async_client.md").write_text(
        f"# {report['benchmark']}\n\nPython {env['python']} on {env['platform']}, {env['cpu']} ({env['cpus']} CPUs).\n"
        f"Load average {env['load_average']} before, {report['load_average_after']} after: the machine was shared, "
        "so the timings are noisy.\nOverhead = wall time from submit to finished result minus the server's own "
        "execution time (history timestamps).\n\n" + table + "\n")


if __name__ == "__main__":
    main()
