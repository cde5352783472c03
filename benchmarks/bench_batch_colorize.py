"""``colorize batch`` on this machine: local workers vs Ray vs a shell loop of ``colorize`` calls.

Eight synthetic videos (gray, moving texture; one reference each) are colorized three ways, each
as the user would run it, in a fresh process:

* **local**: ``colorize batch SRC -o OUT`` (one worker on CPU: one model load);
* **ray**:   ``colorize batch SRC -o OUT --ray local`` (Ray started by the command, one task per
  video, a whole node per CPU task: one worker, one model load);
* **loop**:  ``for v in SRC/*.mp4; do colorize "$v" --ref ... -o ...; done`` (one process and
  one model load per video).

Reported: total wall time, model loads, and Ray's fixed costs: ``ray.init`` on this machine and
the round trip of a task through our Ray task body that does no colorizing (a video whose plan
already failed), one at a time and 64 at once. The checkpoint is the full-size synthetic one
(speed does not depend on the values). Writes ``benchmarks/results/batch_colorize_cpu_<date>.*``.

    python benchmarks/bench_batch_colorize.py [--videos 8] [--frames 8] [--size 112]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "colorize" / "batch"))

import batch_helpers  # noqa: E402
from colorize_bench_common import _cpu_name, _git, weights_file  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


class MachineLoad:
    """CPU share used by processes other than this one and its children, from /proc/stat."""

    @staticmethod
    def busy() -> float:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> "MachineLoad":
        self.start = (self.busy(), self.ours(), time.perf_counter(), os.getloadavg()[0])
        return self

    def __exit__(self, *exc) -> None:
        busy, ours, wall = self.busy(), self.ours(), time.perf_counter()
        elapsed = wall - self.start[2]
        others = (busy - self.start[0]) - (ours - self.start[1])
        self.others_share = max(0.0, others / (elapsed * (os.cpu_count() or 1)))
        self.load = (self.start[3], os.getloadavg()[0])


def make_videos(folder: Path, videos: int, frames: int, size: int) -> None:
    folder.mkdir(parents=True)
    for number in range(videos):
        batch_helpers.write_clip(folder / f"clip_{number:02d}.mp4",
                                 batch_helpers.clip_frames(frames, number, size))
        batch_helpers.write_reference(folder / f"clip_{number:02d}.png",
                                      (40 + 20 * number, 120, 200 - 15 * number), size)


def timed(command: list[str] | str, env: dict[str, str], shell: bool = False) -> tuple[float, str, MachineLoad]:
    with MachineLoad() as load:
        started = time.perf_counter()
        done = subprocess.run(command, shell=shell, env=env, capture_output=True, text=True,
                              executable="/bin/bash" if shell else None)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return seconds, done.stdout, load


def model_loads(stdout: str) -> int:
    match = re.search(r"(\d+) model load", stdout)
    return int(match.group(1)) if match else -1


def ray_overheads(weights: Path) -> dict:
    """ray.init time, and the round trip of our task body on a video that needs no model."""
    import ray

    from colorize.batch.plan import References, VideoJob
    from colorize.batch.ray_executor import FrameCounter, colorize_task
    from colorize.batch.tasks import Task, WorkerSettings

    started = time.perf_counter()
    ray.init(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    init_s = time.perf_counter() - started
    settings = WorkerSettings(weights=str(weights), device="cpu")
    job = VideoJob(0, Path("none.mp4"), Path("none-out.mp4"), References(), problem="no work")
    remote = ray.remote(colorize_task).options(num_cpus=1, max_retries=3)
    counter = ray.remote(num_cpus=0)(FrameCounter).remote()
    ray.get(remote.remote(settings, Task("warm", "video", job), counter))  # worker started
    single = []
    for number in range(20):
        t = time.perf_counter()
        result = ray.get(remote.remote(settings, Task(f"t{number}", "video", job), counter))
        single.append(time.perf_counter() - t)
        assert not result.ok
    t = time.perf_counter()
    ray.get([remote.remote(settings, Task(f"p{n}", "video", job), counter) for n in range(64)])
    parallel = (time.perf_counter() - t) / 64
    ray.shutdown()
    return {"ray_init_s": round(init_s, 2), "task_round_trip_ms_median": round(statistics.median(single) * 1000, 1),
            "task_round_trip_ms_max": round(max(single) * 1000, 1),
            "tasks_64_at_once_ms_per_task": round(parallel * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rows = []
    with weights_file(args.weights) as (weights, weights_label), \
            tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        source = folder / "in"
        make_videos(source, args.videos, args.frames, args.size)
        env = dict(os.environ, COLORIZE_WEIGHTS=str(weights))
        colorize = [sys.executable, "-m", "colorize"]
        runs = {
            "local": colorize + ["batch", str(source), "-o", str(folder / "local"), "--device", "cpu", "-q"],
            "ray": colorize + ["batch", str(source), "-o", str(folder / "ray"), "--device", "cpu",
                               "--ray", "local", "-q"],
        }
        loop = (f'mkdir -p "{folder}/loop" && for v in "{source}"/*.mp4; do '
                f'"{sys.executable}" -m colorize "$v" --ref "${{v%.mp4}}.png" -o "{folder}/loop/$(basename "$v")" '
                f'--device cpu -q --checkpoint-every 0 >/dev/null || exit 1; done')
        for name in ("local", "ray", "loop"):
            if name == "loop":
                seconds, stdout, load = timed(loop, env, shell=True)
                loads = args.videos
            else:
                seconds, stdout, load = timed(runs[name], env)
                loads = model_loads(stdout)
            rows.append({"path": name, "seconds": round(seconds, 1), "model_loads": loads,
                         "seconds_per_video": round(seconds / args.videos, 2),
                         "others_cpu_share": round(load.others_share, 2),
                         "load_average_start_end": [round(x, 2) for x in load.load]})
            print(f"{name}: {seconds:.1f} s, {loads} model loads, others' CPU {load.others_share:.0%}",
                  flush=True)
        overhead = ray_overheads(weights)
        print(overhead, flush=True)

    import torch

    record = {
        "date": date.today().isoformat(), "code": _git("rev-parse", "--short", "HEAD"),
        "machine": {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "platform": platform.platform()},
        "weights": weights_label, "videos": args.videos, "frames_per_video": args.frames,
        "size": f"{args.size}x{args.size}", "runs": rows, "ray": overhead,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"batch_colorize_cpu_{record['date']}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {stem}.json and .md")
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# colorize batch on CPU: local vs Ray vs a shell loop ({r['date']})", "",
        f"{m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}, Python {m['python']}. "
        f"Code {r['code']}. Weights: {r['weights']}.",
        f"{r['videos']} videos of {r['frames_per_video']} frames at {r['size']} (gray, one reference each); "
        "each path is one command in a fresh process, as a user runs it.", "",
        "| path | total s | s per video | model loads | others' CPU | load avg start/end |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["runs"]:
        lines.append(f"| {row['path']} | {row['seconds']} | {row['seconds_per_video']} | {row['model_loads']} | "
                     f"{row['others_cpu_share']:.0%} | {row['load_average_start_end'][0]} / "
                     f"{row['load_average_start_end'][1]} |")
    ray = r["ray"]
    lines += [
        "", "Paths: `colorize batch SRC -o OUT` (local: one worker on CPU), the same with `--ray local` "
        "(Ray started by the command; a CPU task takes the whole node, so one worker), and a bash loop of "
        "`colorize VIDEO --ref REF -o OUT` (one process and one model load per video).", "",
        "Ray's fixed costs on this machine:", "",
        f"- `ray.init` (start a local instance, no dashboard): {ray['ray_init_s']} s",
        f"- one task through our task body that needs no model (a video whose plan failed), one at a time: "
        f"median {ray['task_round_trip_ms_median']} ms, max {ray['task_round_trip_ms_max']} ms",
        f"- 64 such tasks submitted at once: {ray['tasks_64_at_once_ms_per_task']} ms per task", "",
        "Others' CPU: share of the machine's CPU time used by processes other than the benchmark and its "
        "children during the run; near 0 means the figures had the machine to themselves. Higher values "
        "make every path slower, not in equal measure.", "",
    ]
    busiest = max(row["others_cpu_share"] for row in r["runs"])
    if busiest > 0.2:
        lines += [
            f"**Caveat: other processes used up to {busiest:.0%} of the CPUs during these runs.** The wall "
            "times are then set by the contention (and by how it changed from one path to the next), "
            "not by the paths: the local and Ray paths run the same engine in one worker each, so a "
            "large gap between them is load, not Ray. What these figures do show: the model loads "
            "(once per worker for both batch paths, once per video for the loop) and upper bounds for "
            "Ray's fixed costs. Rerun on a quiet machine for the timing comparison.", "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
