"""``colorize --keep-shots``: a rerun after one of 20 shots changed, against a full run.

A synthetic film (``--shots`` shots of ``--frames-per-shot`` frames, ``--size`` square, H.264
with AAC audio) gets one reference per shot (``--ref-dir``) and its cuts as a file. Four runs of
the real ``colorize`` command, in this process, on the same settings (CPU by default, synthetic
weights, ``--crf 0`` so that the outputs can be compared exactly):

1. ``--keep-shots`` first run: every shot colorized and kept;
2. one reference replaced (the shot in the middle), ``--keep-shots --plan``: the fingerprint
   pass alone (every frame decoded and hashed, no model);
3. ``--keep-shots`` rerun: only that shot colorized, the output joined from the parts;
4. the same command without ``--keep-shots`` (a full run, the default checkpoints).

It records each run's wall time and the frames the engine colorized (counted at the engine),
and whether the rerun's decoded frames equal the full run's.

    python benchmarks/bench_keep_shots.py                  # 20 shots x 6 frames, 112x112

Writes ``benchmarks/results/bench_keep_shots.{json,md}``. Timings on a shared machine vary with
its load, which is recorded beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from colorize_bench_common import (  # noqa: E402
    add_run_arguments, colourful_reference, environment, environment_line, gray_frame,
    load_average, markdown_table, weights_file, write_result,
)

logger = logging.getLogger("bench_keep_shots")


class FrameCounter:
    """Counts the frames the engine colorizes (every ``ColorMNetColorizer.colorize`` output)."""

    def __init__(self) -> None:
        self.frames = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from colorize.engine.colorizer import ColorMNetColorizer

        original = ColorMNetColorizer.colorize
        counter = self

        def counting(colorizer, *args, **kwargs):  # noqa: ANN001, ANN202
            for frame in original(colorizer, *args, **kwargs):
                counter.frames += 1
                yield frame

        ColorMNetColorizer.colorize = counting
        try:
            yield
        finally:
            ColorMNetColorizer.colorize = original


def make_film(folder: Path, shots: int, per_shot: int, size: int) -> tuple[Path, Path, Path]:
    """(film, reference folder, cuts file); each shot its own moving texture and reference
    (the film is written by the tests' own helper, with a second of AAC audio)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "colorize"))
    from video_helpers import write_video

    frames = [gray_frame(size, size, 1000 * (index // per_shot) + index)
              for index in range(shots * per_shot)]
    film = write_video(folder / "film.mp4", frames, fps=24, audio_codec="aac")
    refs = folder / "refs"
    refs.mkdir()
    for shot in range(shots):
        write_reference(refs / f"ref_{shot * per_shot:06d}.png", size, shot)
    cuts = folder / "cuts.txt"
    cuts.write_text("".join(f"{shot * per_shot}\n" for shot in range(1, shots)))
    return film, refs, cuts


def write_reference(path: Path, size: int, shift: int) -> None:
    from PIL import Image

    Image.fromarray(np.roll(colourful_reference(size, size), 11 * shift + 5, axis=1)).save(path)


def colorize(args: list[str]) -> tuple[float, float]:
    """One ``colorize`` command in this process; its wall time and the CPU time of this
    process (all threads), which a shared machine's load changes much less."""
    from colorize.cli import cli

    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):     # the output path, the plan
        cli.main(args=[str(a) for a in args], prog_name="colorize", standalone_mode=False)
    return time.perf_counter() - started, time.process_time() - cpu


def decoded(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def run(args: argparse.Namespace, weights: Path, label: str) -> dict:
    env = environment(args.device)       # before the runs: the load at the start
    counter = FrameCounter()
    total = args.shots * args.frames_per_shot
    changed = args.shots // 2
    with tempfile.TemporaryDirectory(prefix="bench-keep-shots-") as folder, counter.installed():
        root = Path(folder)
        film, refs, cuts = make_film(root, args.shots, args.frames_per_shot, args.size)
        common = ["--ref-dir", refs, "--shots", cuts, "--weights", weights, "--device",
                  args.device, "--crf", "0", "-q"]
        if args.precision != "auto":
            common.append(f"--{args.precision}")
        kept, full = root / "kept.mp4", root / "full.mp4"
        runs = []

        def measure(name: str, command: list) -> None:
            before = counter.frames
            seconds, cpu_seconds = colorize(command)
            runs.append({"run": name, "seconds": round(seconds, 3),
                         "cpu_seconds": round(cpu_seconds, 3),
                         "frames_colorized": counter.frames - before,
                         "load_average": load_average()})
            logger.info("%s: %.1f s (%.1f s CPU), %d frames colorized", name, seconds,
                        cpu_seconds, counter.frames - before)

        measure("--keep-shots, first run", [film, *common, "--keep-shots", "-o", kept])
        write_reference(refs / f"ref_{changed * args.frames_per_shot:06d}.png", args.size, 99)
        measure("--keep-shots --plan after one reference changed",
                [film, *common, "--keep-shots", "--plan", "-o", kept])
        measure("--keep-shots rerun after one reference changed",
                [film, *common, "--keep-shots", "-o", kept])
        measure("full run (no --keep-shots)", [film, *common, "-o", full])
        got, want = decoded(kept), decoded(full)
        identical = len(got) == len(want) == total and all(
            np.array_equal(a, b) for a, b in zip(got, want))
    rerun, full_run = runs[2], runs[3]
    return {
        "benchmark": "keep-shots",
        "environment": env,
        "weights": label,
        "settings": {"shots": args.shots, "frames_per_shot": args.frames_per_shot,
                     "frames": total, "size": f"{args.size}x{args.size}", "crf": 0,
                     "changed_shot": changed, "precision": args.precision},
        "runs": runs,
        "rerun_equals_full_run": identical,
        "rerun_time_fraction_of_full_run": round(rerun["seconds"] / full_run["seconds"], 3),
        "rerun_cpu_fraction_of_full_run": round(rerun["cpu_seconds"] / full_run["cpu_seconds"],
                                                3),
        "load_average_end": load_average(),
    }


def markdown(document: dict) -> str:
    env, settings = document["environment"], document["settings"]
    lines = [
        f"# colorize --keep-shots: rerun after one of {settings['shots']} shots changed "
        f"({env['date'][:10]})", "",
        environment_line(env, document["weights"]) + f" {env['torch_threads']} torch threads.",
        f"Synthetic film: {settings['shots']} shots x {settings['frames_per_shot']} frames = "
        f"{settings['frames']} frames at {settings['size']}, H.264 + AAC, one reference per "
        f"shot; the reference of shot {settings['changed_shot']} is replaced before the rerun. "
        f"Output H.264 crf 0. Load average (1, 5, 15 min) at start {env['load_average_start']}, "
        f"at end {document['load_average_end']}: timings taken on a shared machine.", "",
    ]
    rows = [[r["run"], r["seconds"], r["cpu_seconds"], r["frames_colorized"], r["load_average"]]
            for r in document["runs"]]
    lines.append(markdown_table(["run", "wall s", "CPU s", "frames colorized",
                                 "load average after"], rows))
    lines += ["", f"Rerun / full run: {document['rerun_time_fraction_of_full_run']:.3f} of the "
              f"wall time, {document['rerun_cpu_fraction_of_full_run']:.3f} of the CPU time. "
              f"Rerun output equals the full run's decoded frames: "
              f"{document['rerun_equals_full_run']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser, device_default="cpu")
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--frames-per-shot", type=int, default=6)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with weights_file(args.weights) as (weights, label):
        document = run(args, weights, label)
    write_result(args.out / "bench_keep_shots", document, markdown(document))
    print(markdown(document))
    return 0 if document["rerun_equals_full_run"] else 1


if __name__ == "__main__":
    sys.exit(main())
