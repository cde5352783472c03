"""The ComfyUI node path against the CLI path, and the VIDEO node's memory over long videos.

1. Per-frame time of *Colorize Video* (the node class called in-process through the ComfyUI
   stand-in of the tests, so no ComfyUI is needed) against the ``colorize`` command's own pipeline
   (``run_colorization`` into a video sink, as the CLI runs it) on the same clip and weights, each
   after one warm-up run, model load excluded.
2. Peak RSS of the VIDEO node on a 200-frame and a 2,000-frame clip, each in a fresh process
   (Linux VmHWM, reset after the model is loaded and warmed up): streaming keeps it flat.
3. ``--film``: the same per-frame comparison for a film set-up: *Colorize Video* with keyframes
   (Load Keyframes over a folder of ref_NNNNNN.png) and ``shots=auto``, against the CLI's
   pipeline with ``--ref-dir`` on the same folder, ``--shots auto`` and ``--report`` (the node
   always outputs the report, JSON and plot, so the CLI writes it too).

    python benchmarks/bench_comfyui.py                        # 64x64 frames, synthetic weights
    python benchmarks/bench_comfyui.py --size 112 --time-frames 40 --rss-frames 200 2000
    python benchmarks/bench_comfyui.py --film                 # 64x64, two shots, 3 references

Writes ``benchmarks/results/bench_comfyui.{json,md}`` (``bench_comfyui_film.{json,md}`` with --film).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests" / "colorize" / "comfyui"))
sys.path.insert(0, str(ROOT / "tests" / "colorize"))

from colorize_bench_common import (  # noqa: E402
    MIB, RESULTS_DIR, PeakRss, environment, load_average, markdown_table, weights_file, write_atomic,
    was_busy, write_json,
)


def make_clip(path: Path, frames: int, size: int) -> Path:
    """A moving gray ramp with a second of AAC audio (the helper the tests use)."""
    from comfy_clips import moving_gray
    from video_helpers import write_video

    return write_video(path, moving_gray(frames, (size, size)), audio_codec="aac")


def reference(size: int):
    from comfy_clips import as_image, colourful

    return as_image(colourful((size, size)))


class _Monkeypatch:
    """What comfy_standin.install needs from pytest's monkeypatch: set items in sys.modules."""

    def setitem(self, mapping, key, value):
        mapping[key] = value

    def delitem(self, mapping, key, raising=True):
        mapping.pop(key, None)


def node_classes(root: Path):
    import comfy_standin

    _, nodes = comfy_standin.install(root, _Monkeypatch())
    return nodes


def load_model(nodes, weights: Path):
    folder = Path(nodes.folder_paths.models_dir) / "colormnet"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / weights.name
    if not link.exists():
        link.symlink_to(weights)
    return nodes.LoadColorMNet.execute(checkpoint=weights.name, precision="fp32").args[0]


def run_node(nodes, model, clip: Path, size: int) -> Path:
    video = nodes.InputImpl.VideoFromFile(str(clip))
    result = nodes.ColorizeVideo.execute(model=model, video=video, reference=reference(size),
                                         reference_is_first_frame=False, memory_mode="balanced", max_side=0)
    return Path(result.args[0].file)


def run_cli_pipeline(colorizer, clip: Path, size: int, out: Path) -> None:
    """What ``colorize CLIP --ref REF -o OUT`` runs once the model is built."""
    from colorize.comfyui.images import reference_rgb
    from colorize.pipeline import run_colorization
    from colorize.progress import ProgressReporter
    from colorize.reference import resize_to
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    with open_source(clip) as source:
        ref = resize_to(reference_rgb(reference(size)), source.info.upright_size)
        sink = open_sink(resolve_output(str(out), source.info, overwrite=True), source)
        run_colorization(source, ref, colorizer, sink, ProgressReporter(total=None, enabled=False))
        sink.commit()


def time_paths(weights: Path, size: int, frames: int, repeats: int, work: Path) -> dict:
    from colorize.engine import EngineConfig, build_colorizer

    clip = make_clip(work / "time.mp4", frames, size)
    nodes = node_classes(work / "comfyui")
    model = load_model(nodes, weights)
    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32"))
    timing = interleaved_per_frame(lambda: run_node(nodes, model, clip, size).unlink(),
                                   lambda: run_cli_pipeline(colorizer, clip, size, work / "cli.mp4"),
                                   frames, repeats)
    return {"frames": frames, "size": size, "repeats": repeats, **timing}


def interleaved_per_frame(run_node_path: Callable[[], object], run_cli_path: Callable[[], object],
                          frames: int, repeats: int) -> dict:
    """Seconds per frame of both paths: one warm-up each, then ``repeats`` interleaved runs
    (so that load drifts hit both); the best run of each, and all of them."""
    run_node_path()
    run_cli_path()
    node_times, cli_times = [], []
    for _ in range(repeats):
        for run, times in ((run_node_path, node_times), (run_cli_path, cli_times)):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) / frames)
    return {"node_s_per_frame": min(node_times), "cli_s_per_frame": min(cli_times),
            "node_all": node_times, "cli_all": cli_times}


def make_film(folder: Path, frames: int, size: int) -> tuple[Path, Path, int]:
    """A slow pan, then a hard cut to a checkerboard at ``frames // 2`` (found by the detector),
    with AAC audio; and ``refs/`` with references for frame 0, a keyframe inside the first shot,
    and the second shot's start. Returns (clip, refs folder, cut)."""
    from PIL import Image

    from comfy_clips import colourful
    from video_helpers import write_video

    cut = frames // 2
    y, x = np.mgrid[0:size, 0:size]
    ramp = (x * 255 // size + y).clip(0, 255).astype(np.uint8)
    board = ((((x // 8) + (y // 8)) % 2) * 60 + 20).astype(np.uint8)
    luma = [np.roll(ramp, t // 2, axis=1) for t in range(cut)] + [np.roll(board, t, axis=1) for t in range(frames - cut)]
    clip = write_video(folder / "film.mp4", [np.repeat(f[..., None], 3, axis=2) for f in luma], audio_codec="aac")
    refs = folder / "refs"
    refs.mkdir()
    for frame, picture in ((0, colourful((size, size))), (cut // 2, colourful((size, size))[::-1]),
                           (cut, colourful((size, size))[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(picture)).save(refs / f"ref_{frame:06d}.png")
    return clip, refs, cut


def run_film_node(nodes, model, clip: Path, folder_name: str) -> Path:
    keyframes = nodes.LoadKeyframes.execute(folder=folder_name).args[0]
    result = nodes.ColorizeVideo.execute(model=model, video=nodes.InputImpl.VideoFromFile(str(clip)),
                                         keyframes=keyframes, shots="auto", reference_is_first_frame=False,
                                         memory_mode="balanced", max_side=0)
    return Path(result.args[0].file)


def run_film_cli(colorizer, clip: Path, refs: Path, out: Path) -> list[int]:
    """What ``colorize CLIP --ref-dir REFS --shots auto --report R.json -o OUT`` runs once the
    model is built (the CLI's own footage set-up); returns the cuts found."""
    from colorize.cli import _footage_setup
    from colorize.pipeline import run_colorization
    from colorize.progress import ProgressReporter
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    options = {"reference_dir": refs, "shots": "auto", "report_path": out.with_suffix(".json")}
    with open_source(clip) as source:
        footage = _footage_setup(options, (), source.info, 25.0)
        sink = open_sink(resolve_output(str(out), source.info, overwrite=True), source)
        run_colorization(source, footage.main_reference, colorizer, sink,
                         ProgressReporter(total=None, enabled=False), footage=footage)
        sink.commit()
    footage.write_report()
    return sorted(footage.detector.cuts)


def time_film_paths(weights: Path, size: int, frames: int, repeats: int, work: Path) -> dict:
    import shutil

    from colorize.engine import EngineConfig, build_colorizer

    clip, refs, cut = make_film(work, frames, size)
    nodes = node_classes(work / "comfyui")
    shutil.copytree(refs, Path(nodes.folder_paths.get_input_directory()) / "refs")
    model = load_model(nodes, weights)
    colorizer = build_colorizer(EngineConfig(weights=weights, device="cpu", precision="fp32"))
    cuts: list[int] = []

    def cli_run() -> None:
        cuts[:] = run_film_cli(colorizer, clip, refs, work / "cli.mp4")   # same on every run

    timing = interleaved_per_frame(lambda: run_film_node(nodes, model, clip, "refs").unlink(),
                                   cli_run, frames, repeats)
    return {"frames": frames, "size": size, "repeats": repeats, "cut": cut, "cuts_found": cuts,
            "references": sorted(p.name for p in refs.iterdir()), **timing}


def film_main(args: argparse.Namespace) -> None:
    with weights_file(args.weights) as (weights, label), tempfile.TemporaryDirectory() as folder:
        load_before = load_average()
        timing = time_film_paths(weights, args.size, args.film_frames, args.repeats, Path(folder))
    ratio = timing["node_s_per_frame"] / timing["cli_s_per_frame"] - 1
    print(f"film per frame: node {timing['node_s_per_frame']:.3f} s, cli {timing['cli_s_per_frame']:.3f} s "
          f"({100 * ratio:+.1f}%), cuts found {timing['cuts_found']}")
    document = {"benchmark": "bench_comfyui --film", "weights": label, "environment": environment("cpu"),
                "load_average_before": load_before, "load_average_after": load_average(),
                "timing": timing, "node_vs_cli": ratio}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench_comfyui_film.json", document)
    table = markdown_table(["path", "s/frame (best of %d)" % timing["repeats"], "all runs"],
                           [["Colorize Video node: Load Keyframes + shots=auto (stand-in, in-process)",
                             timing["node_s_per_frame"], ", ".join(f"{t:.3f}" for t in timing["node_all"])],
                            ["colorize CLI pipeline: --ref-dir + --shots auto + --report",
                             timing["cli_s_per_frame"], ", ".join(f"{t:.3f}" for t in timing["cli_all"])]])
    write_atomic(args.out / "bench_comfyui_film.md",
                 f"# ComfyUI node vs CLI with keyframes and shots=auto ({timing['size']}x{timing['size']}, "
                 f"{timing['frames']} frames, cut at {timing['cut']}, references {', '.join(timing['references'])}, "
                 f"CPU fp32)\n\n{table}\n\nNode vs CLI: {100 * ratio:+.1f}% per frame (goal: within 5%). "
                 f"Cuts found: {timing['cuts_found']} (both paths use the same detector).\n"
                 f"Load average before/after: {load_before} / {document['load_average_after']}"
                 f"{load_note(load_before)}; both paths were interleaved, best of each taken.\n")
    print(f"wrote {args.out / 'bench_comfyui_film.json'}")


def load_note(load_before) -> str:
    """Says when other work shared the machine (a load above half its cores at the start)."""
    busy = was_busy(load_before, os.cpu_count() or 1)
    return " (other work shared the machine)" if busy else " (nothing else running)"


def rss_child(weights: Path, size: int, frames: int, work: Path) -> dict:
    """In a fresh process: the VIDEO node's peak RSS over one clip of ``frames`` frames."""
    clip = make_clip(work / f"rss-{frames}.mp4", frames, size)
    nodes = node_classes(work / f"comfyui-{frames}")
    model = load_model(nodes, weights)
    run_node(nodes, model, make_clip(work / "warm.mp4", 3, size), size).unlink()
    with PeakRss() as peak:
        started = time.perf_counter()
        out = run_node(nodes, model, clip, size)
        seconds = time.perf_counter() - started
    out.unlink()
    return {"frames": frames, "peak_rss_mb": peak.max_rss / MIB, "seconds": seconds,
            "s_per_frame": seconds / frames}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="square frame side (default 64)")
    parser.add_argument("--time-frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-frames", type=int, nargs="*", default=[200, 2000])
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (default: synthetic)")
    parser.add_argument("--film", action="store_true", help="time the keyframes + shots=auto set-up instead")
    parser.add_argument("--film-frames", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_rss is not None:
        print(json.dumps(rss_child(args.weights, args.size, args.child_rss, args.work)))
        return
    if args.film:
        film_main(args)
        return

    with weights_file(args.weights) as (weights, label), tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        load_before = load_average()
        timing = time_paths(weights, args.size, args.time_frames, args.repeats, work)
        print(f"per frame: node {timing['node_s_per_frame']:.3f} s, cli {timing['cli_s_per_frame']:.3f} s")
        rss = []
        for frames in args.rss_frames:
            done = subprocess.run([sys.executable, __file__, "--child-rss", str(frames), "--size", str(args.size),
                                   "--weights", str(weights), "--work", str(work)],
                                  capture_output=True, text=True, check=True)
            rss.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{frames} frames: peak RSS {rss[-1]['peak_rss_mb']:.0f} MB, {rss[-1]['s_per_frame']:.3f} s/frame")
    growth = rss[-1]["peak_rss_mb"] / rss[0]["peak_rss_mb"] - 1 if len(rss) > 1 else 0.0
    document = {"benchmark": "bench_comfyui", "weights": label, "environment": environment("cpu"),
                "load_average_before": load_before, "load_average_after": load_average(),
                "timing": timing, "rss": rss, "rss_growth": growth}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench_comfyui.json", document)
    table = markdown_table(["path", "s/frame (best of %d)" % timing["repeats"]],
                           [["Colorize Video node (stand-in, in-process)", timing["node_s_per_frame"]],
                            ["colorize CLI pipeline", timing["cli_s_per_frame"]]])
    rss_table = markdown_table(["frames", "peak RSS MB", "s/frame"],
                               [[r["frames"], r["peak_rss_mb"], r["s_per_frame"]] for r in rss])
    write_atomic(args.out / "bench_comfyui.md",
                 f"# ComfyUI node path vs CLI ({timing['size']}x{timing['size']}, {timing['frames']} frames, CPU fp32)\n\n"
                 f"{table}\n\n## VIDEO node peak RSS\n\n{rss_table}\n\nGrowth from {rss[0]['frames']} to "
                 f"{rss[-1]['frames']} frames: {100 * growth:+.1f}% (goal: within 10%).\n"
                 f"Load average before/after: {load_before} / {document['load_average_after']}"
                 f"{load_note(load_before)}; both paths were interleaved.\n")
    print(f"RSS growth {100 * growth:+.1f}%; wrote {args.out / 'bench_comfyui.json'}")


if __name__ == "__main__":
    main()
