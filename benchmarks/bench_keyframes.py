"""Cost of picking keyframes (``colorize keyframes``) per frame of video, against colorizing it.

For each size it measures, per frame:

* **pick**: :class:`colorize.references.KeyframePicker` ``feed`` on decoded frames (synthetic
  grey frames, a cut every 50, so a group decision every 50 frames), at the default
  ``sample_every=2`` and at 1 (every frame measured). Wall time and the process's CPU time.
* **decode** and **keyframes pass**: an H.264 clip of the same frames is decoded alone, then
  run through the whole ``colorize keyframes`` pick (decode, pick, grey stills and
  keyframes.json written): what a user pays for a pass over the film.
* **colorize**: the engine (synthetic weights: speed does not depend on the values) on the same
  frames with one reference, CPU fp32, timed over a run of ``--colorize-frames`` frames after a
  two-frame warm-up run.

Figures that are times depend on the machine's load: the load average is recorded at the start
and end of each size. Writes ``benchmarks/results/bench_keyframes.{json,md}``.

    python benchmarks/bench_keyframes.py [--sizes 224x224 640x360 1280x720] [--frames 300]
                                         [--clip-frames 100] [--colorize-frames 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    RESULTS_DIR, colourful_reference, environment, gray_frame, load_average, markdown_table,
    weights_file, write_result,
)

SHOT_LENGTH = 50
DISTINCT = 12


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def frame_pool(width: int, height: int) -> list[np.ndarray]:
    return [gray_frame(height, width, index) for index in range(DISTINCT)]


def video(pool: list[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` frames: each shot of SHOT_LENGTH frames cycles through its own part of the pool,
    shifted so shots differ; the same array objects are reused (nothing is copied)."""
    frames = []
    for index in range(count):
        shot = index // SHOT_LENGTH
        frames.append(pool[(shot * 5 + index) % len(pool)])
    return frames


def time_pick(frames: list[np.ndarray], sample_every: int) -> dict:
    from colorize.references import KeyframePicker, PickConfig

    cuts = list(range(SHOT_LENGTH, len(frames), SHOT_LENGTH))
    picker = KeyframePicker(PickConfig(sample_every=sample_every), cuts=cuts,
                            on_still=lambda still: None)
    times = []
    cpu_started = time.process_time()
    for index, frame in enumerate(frames):
        started = time.perf_counter()
        picker.feed(index, frame)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    pick = picker.finish()
    finish_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    return {
        "sample_every": sample_every,
        "frames": len(frames),
        "keyframes": len(pick.keyframes),
        "ms_per_frame_mean": (sum(times) + finish_s) / len(frames) * 1e3,
        "ms_per_frame_median": statistics.median(times) * 1e3,
        "cpu_ms_per_frame": cpu_s / len(frames) * 1e3,
    }


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def time_pass(clip: Path, folder: Path, cuts_file: Path, count: int) -> dict:
    from colorize.references.folder import KeyframesRequest, pick_to_folder
    from colorize.video.source import open_source

    started = time.perf_counter()
    with open_source(clip) as source:
        decoded = sum(1 for _ in source.frames())
    decode_s = time.perf_counter() - started
    assert decoded == count, (decoded, count)
    started = time.perf_counter()
    data = pick_to_folder(KeyframesRequest(clip, folder, shots=str(cuts_file), progress=False,
                                           rescan=True))
    pass_s = time.perf_counter() - started
    return {
        "clip_frames": count,
        "decode_ms_per_frame": decode_s / count * 1e3,
        "keyframes_pass_ms_per_frame": pass_s / count * 1e3,
        "keyframes_found": len(data["keyframes"]),
    }


def time_colorize(weights: Path, frames: list[np.ndarray], count: int) -> dict:
    import torch

    from colorize.engine import EngineConfig, build_colorizer

    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32"))
    height, width = frames[0].shape[:2]
    reference = colourful_reference(height, width)
    with torch.inference_mode():
        started = time.perf_counter()
        for _ in colorizer.colorize(iter(frames[:2]), reference):  # warm-up run
            pass
        warm_up_s = time.perf_counter() - started
        started = time.perf_counter()
        done = sum(1 for _ in colorizer.colorize(iter(frames[:count]), reference))
        seconds = time.perf_counter() - started
    del colorizer
    return {
        "frames": done,
        "s_per_frame_mean": seconds / done if done else None,
        "warm_up_run_s": warm_up_s,
        "torch_threads": torch.get_num_threads(),
    }


def markdown(document: dict) -> str:
    env = document["environment"]
    rows = []
    for run in document["runs"]:
        colorize_s = run["colorize"]["s_per_frame_mean"]
        for pick in run["pick"]:
            share = f"{100 * pick['ms_per_frame_mean'] / 1e3 / colorize_s:.2g}%" \
                if colorize_s else "not measured"
            rows.append([run["size"], pick["sample_every"], pick["ms_per_frame_mean"],
                         pick["ms_per_frame_median"], pick["cpu_ms_per_frame"],
                         run["pass"]["decode_ms_per_frame"],
                         run["pass"]["keyframes_pass_ms_per_frame"],
                         colorize_s * 1e3 if colorize_s else None, share,
                         f"{run['load_average_start']} / {run['load_average_end']}"])
    lines = [
        "# Picking keyframes: cost per frame against colorizing it",
        "",
        f"{env['cpu']}, {env['logical_cpus']} logical CPUs, torch {env['torch']} "
        f"({_threads(document)} threads), numpy {env['numpy']}, "
        f"Python {env['python']}. Code {env['git_commit']}, {env['date']}. Weights: "
        f"{document['weights']}.",
        "Timings were taken on a machine shared with other sessions (load average per size in "
        "the last column, 1/5/15 min): they are upper bounds, and under a heavy load wall times "
        "vary by tens of percent from one measurement to the next (the CPU column, the "
        "process's own CPU time, varies less).",
        "",
        f"pick: `KeyframePicker.feed` over {document['settings']['frames']} frames (a cut every "
        f"{SHOT_LENGTH}); decode / pass: an H.264 clip of {document['settings']['clip_frames']} "
        "frames decoded alone, then the whole `colorize keyframes --shots FILE` pick (decode, "
        f"pick, stills, keyframes.json); colorize: the engine on CPU fp32, "
        f"{document['settings']['colorize_frames']} frames after a warm-up run, one reference.",
        "",
        markdown_table(["size", "sample every", "pick ms/frame", "median", "CPU ms/frame",
                        "decode ms/frame", "keyframes pass ms/frame", "colorize ms/frame",
                        "pick / colorize", "load avg start / end"], rows),
        "",
        *document["conclusions"],
        "",
    ]
    return "\n".join(lines)


def _threads(document: dict) -> str:
    counts = {run["colorize"]["torch_threads"] for run in document["runs"]} - {None}
    return ", ".join(map(str, sorted(counts))) or "engine not run"


def quiet_colorize_figures(results: Path) -> dict:
    """fp32 colorize s/frame by size from the newest ``colorize_cpu_*.json`` (taken on a quiet
    machine), to set the pick's CPU time against when this run's engine times are inflated by
    load."""
    candidates = sorted(p for p in results.glob("colorize_cpu_*.json") if "subset" not in p.name)
    if not candidates:
        return {}
    data = json.loads(candidates[-1].read_text())
    return {"file": candidates[-1].name,
            "load_average_start": data.get("environment", {}).get("load_average_start"),
            "s_per_frame": {run["size"]: run["s_per_frame"] for run in data["runs"]
                            if run.get("mode") == "colorize" and run.get("precision") == "fp32"}}


def conclusions(runs: list[dict], quiet: dict) -> list[str]:
    out = []
    for run in runs:
        default = next(p for p in run["pick"] if p["sample_every"] == 2)
        colorize_s = run["colorize"]["s_per_frame_mean"]
        line = (f"- {run['size']}: picking costs {default['ms_per_frame_mean']:.2f} ms a frame "
                f"(wall; {default['cpu_ms_per_frame']:.2f} ms of CPU)")
        if colorize_s:
            line += (f", {100 * default['ms_per_frame_mean'] / 1e3 / colorize_s:.2g}% of "
                     f"colorizing it in this run ({colorize_s:.2f} s)")
        quiet_s = quiet.get("s_per_frame", {}).get(run["size"])
        if quiet_s:
            line += (f", {100 * default['cpu_ms_per_frame'] / 1e3 / quiet_s:.2g}% of the "
                     f"{quiet_s:.2f} s a quiet machine took (`{quiet['file']}`)")
        line += (f"; a whole keyframes pass (decode included) takes "
                 f"{run['pass']['keyframes_pass_ms_per_frame']:.2f} ms a frame, decoding alone "
                 f"{run['pass']['decode_ms_per_frame']:.2f} ms.")
        out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["224x224", "640x360", "1280x720"])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--clip-frames", type=int, default=100)
    parser.add_argument("--colorize-frames", type=int, default=4)
    parser.add_argument("--colorize-sizes", nargs="*", default=None,
                        help="sizes at which the engine is timed (default: every size); on a "
                        "busy CPU a 1280x720 frame takes minutes")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: synthetic weights)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    env = environment("cpu")  # before the runs: it records the load average at the start
    runs = []
    # --colorize-frames 0 leaves the engine out (and the 0.5 GB synthetic checkpoint unbuilt).
    engine_used = args.colorize_frames and args.colorize_sizes != []
    weights_context = weights_file(args.weights) if engine_used else \
        contextlib.nullcontext((None, "not used (--colorize-frames 0)"))
    with weights_context as (weights, label), \
            tempfile.TemporaryDirectory(prefix="bench-keyframes-") as scratch:
        for size in args.sizes:
            width, height = parse_size(size)
            load_start = load_average()
            pool = frame_pool(width, height)
            frames = video(pool, args.frames)
            picks = [time_pick(frames, every) for every in (2, 1)]
            folder = Path(scratch) / size
            folder.mkdir()
            clip = folder / "clip.mp4"
            clip_frames = video(pool, args.clip_frames)
            write_clip(clip, clip_frames)
            cuts_file = folder / "cuts.txt"
            cuts_file.write_text("\n".join(str(c) for c in
                                           range(SHOT_LENGTH, args.clip_frames, SHOT_LENGTH)))
            pass_figures = time_pass(clip, folder / "keyframes", cuts_file, args.clip_frames)
            engine_here = args.colorize_frames and (args.colorize_sizes is None
                                                    or size in args.colorize_sizes)
            colorize = time_colorize(weights, frames, args.colorize_frames) \
                if engine_here else {"frames": 0, "s_per_frame_mean": None, "torch_threads": None}
            runs.append({"size": size, "pick": picks, "pass": pass_figures, "colorize": colorize,
                         "load_average_start": load_start, "load_average_end": load_average()})
            print(f"{size}: pick {picks[0]['ms_per_frame_mean']:.2f} ms/frame (every 2), "
                  f"{picks[1]['ms_per_frame_mean']:.2f} (every 1); pass "
                  f"{pass_figures['keyframes_pass_ms_per_frame']:.2f} ms/frame; colorize "
                  f"{colorize['s_per_frame_mean'] or float('nan'):.3f} s/frame", flush=True)
    document = {
        "benchmark": "keyframes",
        "environment": env,
        "weights": label,
        "settings": {"frames": args.frames, "clip_frames": args.clip_frames,
                     "colorize_frames": args.colorize_frames, "shot_length": SHOT_LENGTH},
        "runs": runs,
    }
    document["quiet_colorize"] = quiet_colorize_figures(RESULTS_DIR)
    document["conclusions"] = conclusions(runs, document["quiet_colorize"])
    args.out.mkdir(parents=True, exist_ok=True)
    write_result(args.out / "bench_keyframes", document, markdown(document))
    print("\n".join(document["conclusions"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
