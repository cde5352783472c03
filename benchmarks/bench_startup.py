"""Start-up of ``colorize`` on a short 224x224 video with a cached safetensors checkpoint.

Runs the real command in fresh processes and reports where the time before the first output
frame goes:

- phases (wall clock from the process start, one instrumented run): imports of the CLI, torch
  and the rest, checkpoint load, network build and cast, first output frame, then the steady
  time per frame; the **overhead** is the first frame's time minus one steady frame;
- ``python -X importtime``: the modules that cost most to import (and how many are imported);
- ``cProfile`` of a run (function call counts and cumulative times), which depend less on the
  machine's load than wall-clock times.

The load average is recorded next to the figures: timings taken on a shared machine are slower.

    python benchmarks/bench_startup.py                 # synthetic weights, 8 frames
    python benchmarks/bench_startup.py --weights ~/.cache/colorize/colormnet.safetensors
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    RESULTS_DIR, colourful_reference, environment, gray_frame, load_average, markdown_table,
    today, was_busy, weights_file, write_result,
)

SIZE = 224

# Runs inside the measured process: stamps taken around the stages, then the real CLI.
PROBE = r"""
import json, sys, time
stamps = {"process_start": float(sys.argv[1])}
cpu = {}
def stamp(name):
    stamps.setdefault(name, time.time()); cpu.setdefault(name, time.process_time())
import colorize.cli
stamp("cli_imported")
import colorize.engine.build as build
load, prepare = build._load_state_dict, build.prepare_network
def timed_load(path):
    stamp("load_start"); out = load(path); stamp("load_end"); return out
def timed_prepare(*args):
    stamp("prepare_start"); out = prepare(*args); stamp("prepare_end"); return out
build._load_state_dict, build.prepare_network = timed_load, timed_prepare
import colorize.video.sink as sink
writes, write_cpu = [], []
write = sink.VideoFileSink.write
def timed_write(self, *args):
    out = write(self, *args); writes.append(time.time()); write_cpu.append(time.process_time())
    return out
sink.VideoFileSink.write = timed_write
try:
    colorize.cli.cli.main(args=sys.argv[3:], prog_name="colorize", standalone_mode=False)
finally:
    stamps["writes"], stamps["cpu"], stamps["write_cpu"] = writes, cpu, write_cpu
    with open(sys.argv[2], "w") as handle:
        json.dump(stamps, handle)
"""


def make_clip(folder: Path, frames: int) -> tuple[Path, Path]:
    import av
    from PIL import Image

    video = folder / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18"})
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(gray_frame(SIZE, SIZE, index), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    reference = folder / "ref.png"
    Image.fromarray(colourful_reference(SIZE, SIZE)).save(reference)
    return video, reference


def cli_args(video: Path, reference: Path, weights: Path, out: Path, precision: str) -> list[str]:
    return [str(video), "--ref", str(reference), "-o", str(out), "--weights", str(weights),
            "--device", "cpu", f"--{precision}", "-q", "--overwrite", "--checkpoint-every", "0"]


def phases(args, video: Path, reference: Path, weights: Path, folder: Path) -> dict:
    import time

    stamps_path = folder / "stamps.json"
    started = time.time()
    subprocess.run([sys.executable, "-c", PROBE, repr(started), str(stamps_path),
                    *cli_args(video, reference, weights, folder / "out.mp4", args.precision)],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    stamps = json.loads(stamps_path.read_text())
    writes, cpu, write_cpu = stamps.pop("writes"), stamps.pop("cpu"), stamps.pop("write_cpu")
    relative = {name: value - started for name, value in stamps.items() if value}
    steady = [b - a for a, b in zip(writes[1:], writes[2:])]       # frame 1 is still warming
    steady_s = sorted(steady)[len(steady) // 2] if steady else None
    steady_cpu = [b - a for a, b in zip(write_cpu[1:], write_cpu[2:])]
    steady_cpu_s = sorted(steady_cpu)[len(steady_cpu) // 2] if steady_cpu else None
    first = writes[0] - started
    return {"stamps_s": relative, "first_frame_s": first, "steady_s_per_frame": steady_s,
            "overhead_s": first - steady_s if steady_s is not None else None,
            # CPU seconds of the process (all its threads) at the same points: what the work
            # costs, much less changed by other processes than wall-clock times.
            "cpu_stamps_s": {**cpu, "first_frame": write_cpu[0]} if write_cpu else cpu,
            "steady_cpu_s_per_frame": steady_cpu_s,
            "overhead_cpu_s": write_cpu[0] - steady_cpu_s if steady_cpu_s is not None else None,
            "frames_written": len(writes)}


def repeated_phases(args, video: Path, reference: Path, weights: Path, folder: Path) -> dict:
    """Run the instrumented command ``--repeats`` times: the median run's phases, every
    run's overhead (one run on a 2-core machine moves by a tenth of a second or more)."""
    runs = [phases(args, video, reference, weights, folder) for _ in range(max(1, args.repeats))]
    runs.sort(key=lambda run: run["overhead_s"])
    return {"phases": runs[len(runs) // 2],
            "overheads_s": [run["overhead_s"] for run in runs]}


def import_times(args) -> dict:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import colorize.cli, colorize.engine.build, torch, av, "
                           "colorize.model, colorize.pipeline"],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].strip().isdigit():
            rows.append((parts[2].rstrip(), int(parts[1]), int(parts[0].split(":")[1])))
    biggest = sorted(((n.strip(), c) for n, c, _ in rows if "." not in n.strip()),
                     key=lambda item: -item[1])[:12]
    return {"modules": len(rows), "biggest_packages_us": biggest}


def profile(args, video: Path, reference: Path, weights: Path, folder: Path) -> dict:
    target = folder / "startup.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(target), "-m", "colorize",
                    *cli_args(video, reference, weights, folder / "prof.mp4", args.precision)],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    stream = io.StringIO()
    stats = pstats.Stats(str(target), stream=stream)
    stats.sort_stats("cumulative").print_stats(25)
    return {"total_calls": stats.total_calls, "primitive_calls": stats.prim_calls,
            "top_cumulative": stream.getvalue().split("\n", 6)[-1].strip()}


def markdown(document: dict) -> str:
    env, phase = document["environment"], document["phases"]
    stamps = phase["stamps_s"]
    cpu = phase.get("cpu_stamps_s", {})
    rows = [["CLI imported (click, colorize.cli)", stamps.get("cli_imported"), cpu.get("cli_imported")],
            ["checkpoint load starts (torch, av, engine imported; input opened)",
             stamps.get("load_start"), cpu.get("load_start")],
            ["checkpoint loaded and checked", stamps.get("load_end"), cpu.get("load_end")],
            ["network built (meta device, tensors adopted)", stamps.get("prepare_start"),
             cpu.get("prepare_start")],
            [f"network on the device in {document['precision']}", stamps.get("prepare_end"),
             cpu.get("prepare_end")],
            ["first output frame handed to the encoder", phase["first_frame_s"], cpu.get("first_frame")]]
    lines = [f"# colorize start-up at {SIZE}x{SIZE} ({document['precision']}, CPU, "
             f"{document['threads']} threads)", "",
             f"CPU: {env['cpu']} ({env['logical_cpus']} logical CPUs), torch {env['torch']}, code "
             f"{env['git_commit']}. Weights: {document['weights']} (safetensors, in the page cache "
             "after a first run).", "",
             f"Load average at start {env['load_average_start']}, at end "
             f"{document['load_average_end']}: timings "
             + ("**taken under shared load**" if was_busy(env["load_average_start"], document["threads"])
                else "on a quiet machine") + "; call counts below do not depend on it.", "",
             "## Phases (seconds since the process started)", "",
             markdown_table(["phase", "wall s", "process CPU s (all threads)"], rows), "",
             f"Steady frame time {phase['steady_s_per_frame']:.3f} s wall, "
             f"{phase.get('steady_cpu_s_per_frame') or 0:.3f} s CPU; **overhead (first frame minus "
             f"one steady frame): {phase['overhead_s']:.2f} s wall, "
             f"{phase.get('overhead_cpu_s') or 0:.2f} s CPU** over {phase['frames_written']} frames "
             "(the median run).", "",
             "Overhead of each run, lowest first: "
             + ", ".join(f"{value:.2f}" for value in document.get("overheads_s", [])) + " s.",
             "", "## Imports (`python -X importtime`)", "",
             f"{document['imports']['modules']} modules. Largest packages (cumulative):", "",
             markdown_table(["package", "ms"], [[name, us / 1000] for name, us in
                                                document["imports"]["biggest_packages_us"]]),
             "", "## cProfile of a run", "",
             f"{document['profile']['total_calls']} function calls "
             f"({document['profile']['primitive_calls']} primitive).", "", "```",
             document["profile"]["top_cumulative"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, help="checkpoint (default: synthetic weights)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs; the phase table is the median run's (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default=None, help="result file stem (default startup_<date>)")
    args = parser.parse_args(argv)
    env = environment("cpu")
    with tempfile.TemporaryDirectory(prefix="colorize-startup-") as temp, \
            weights_file(args.weights) as (weights, label):
        folder = Path(temp)
        video, reference = make_clip(folder, args.frames)
        # A first run puts the checkpoint in the page cache ("cached safetensors").
        subprocess.run([sys.executable, "-m", "colorize",
                        *cli_args(video, reference, weights, folder / "warm.mp4", args.precision)],
                       check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        document = {"benchmark": "bench_startup", "environment": env, "weights": label,
                    "precision": args.precision, "threads": args.threads, "frames": args.frames,
                    **repeated_phases(args, video, reference, weights, folder),
                    "imports": import_times(args),
                    "profile": profile(args, video, reference, weights, folder),
                    "load_average_end": load_average()}
    stem = args.out / (args.name or f"startup_{today()}")
    write_result(stem, document, markdown(document))
    print(markdown(document))
    print(f"written: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
