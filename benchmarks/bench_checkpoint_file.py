"""What checkpoints cost the video file: size and keyframes against ``--checkpoint-every 0``.

Each checkpoint of a video run closes a segment, and every segment starts with a keyframe.
This runs the real pipeline, checkpoints and segment join on a 1280x720 H.264 clip (with cuts)
at the default crf, three ways: checkpoints off, the automatic interval as it is now (at least
10 s of work and the encoder's keyframe interval, or a cut), and the automatic interval as it
was (10 s of work only), and counts the output's keyframes and bytes.

Where segments start depends only on the time per frame, so the engine is replaced by a
stand-in that takes the engine's time per frame on this CPU (``--paces``: at ``--max-side 448``
and at full 720p) and tints the frames; to keep the run short, its sleep and the 10 s minimum
are both divided by ``--speedup`` (the same boundaries). The frames it hands the encoder are
the input's with a tint, not a real colorization: the size of a keyframe relative to the other
frames is what counts here.

    python benchmarks/bench_checkpoint_file.py [--frames 120] [--paces 448=1.25 720p=6.6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from colorize_bench_common import (  # noqa: E402
    RESULTS_DIR, colourful_reference, environment, gray_frame, load_average, markdown_table,
    write_result,
)

WIDTH, HEIGHT = 1280, 720


class PacedColorizer:
    """Takes ``seconds_per_frame`` per frame, tints the frame, and can save its (trivial) state."""

    def __init__(self, seconds_per_frame: float) -> None:
        self.seconds_per_frame = seconds_per_frame
        self._next = 0

    def colorize(self, frames, reference, guide=None):
        from colorize.engine.guide import FrameRecord

        tint = reference.reshape(-1, 3).mean(axis=0) - reference.mean()
        for index, frame in enumerate(frames):
            time.sleep(self.seconds_per_frame)
            self._next = index + 1
            if guide is not None and guide.on_frame is not None:
                guide.on_frame(FrameRecord(index, 1.0, 0, 0))
            yield np.clip(frame + tint, 0, 255).astype(np.uint8)

    def snapshot(self):
        import torch

        from colorize.engine.state import VideoState

        return VideoState({"step": torch.tensor([self._next])}, {"next_frame": self._next})


def write_clip(path: Path, count: int, cuts: list[int]) -> None:
    """One still scene per shot, panning 3 px a frame, another scene at each cut (x264
    defaults, crf 18)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        scene, still = 0, gray_frame(HEIGHT, WIDTH + 3 * count, 0)
        for index in range(count):
            if index in cuts:
                scene += 1
                still = gray_frame(HEIGHT, WIDTH + 3 * count, 1000 * scene)
            rgb = np.ascontiguousarray(still[:, 3 * index:3 * index + WIDTH])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def keyframes(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
    return [rank for rank, i in enumerate(order) if packets[i].is_keyframe]


def one_run(clip: Path, cuts: list[int], output: Path, mode: str, pace: float) -> dict:
    from colorize.footage.references import ReferenceSchedule
    from colorize.footage.resume import CheckpointSettings, ResumeSession
    from colorize.footage.setup import FootageSetup
    from colorize.pipeline import run_colorization
    from colorize.progress import ProgressReporter
    from colorize.video.sink import open_sink
    from colorize.video.source import open_source
    from colorize.video.target import resolve_output

    reference = colourful_reference(HEIGHT, WIDTH)
    with open_source(clip) as source:
        target = resolve_output(str(output), source.info, overwrite=True)
        session = None
        if mode != "off":
            session = ResumeSession.open(target, source, lambda: open_source(clip), None,
                                         {"bench": True}, CheckpointSettings(every=None))
            if mode == "before":
                session.parts.min_frames_between = 1        # the rule before this change
        footage = FootageSetup.prepare(ReferenceSchedule(main=Path("reference")),
                                       frame_size=(HEIGHT, WIDTH), frame_count=None,
                                       frame_count_exact=False, cuts=cuts, fps=25.0,
                                       read=lambda path, size: reference)
        sink = session.parts if session is not None else open_sink(target, source)
        frames = run_colorization(source, reference, PacedColorizer(pace), sink,
                                  ProgressReporter(total=None, enabled=False), resume=session,
                                  footage=footage)
        if session is not None:
            session.finish(frames)
        else:
            sink.commit()
    return {"mode": mode, "frames": frames, "bytes": output.stat().st_size,
            "keyframes": keyframes(output)}


def run(args) -> dict:
    from colorize.footage import resume

    env = environment("cpu")
    cuts = [args.frames // 3, (2 * args.frames) // 3]
    rows = []
    resume.AUTO_MIN_SECONDS = resume.AUTO_MIN_SECONDS / args.speedup
    with tempfile.TemporaryDirectory(prefix="colorize-ckfile-") as temp:
        folder = Path(temp)
        clip = folder / "clip.mp4"
        write_clip(clip, args.frames, cuts)
        for label, pace in args.paces:
            for mode in ("off", "now", "before"):
                row = one_run(clip, cuts, folder / f"{label}-{mode}.mp4", mode, pace / args.speedup)
                rows.append({"pace": label, "s_per_frame": pace, **row})
        input_keyframes = keyframes(clip)
    for row in rows:
        off = next(r for r in rows if r["pace"] == row["pace"] and r["mode"] == "off")
        row["size_vs_off"] = row["bytes"] / off["bytes"] - 1
    env["load_average_end"] = load_average()
    return {"benchmark": "bench_checkpoint_file", "environment": env, "frames": args.frames,
            "size": f"{WIDTH}x{HEIGHT}", "cuts": cuts, "input_keyframes": input_keyframes,
            "speedup": args.speedup, "results": rows}


def markdown(document: dict) -> str:
    env = document["environment"]
    names = {"off": "--checkpoint-every 0", "now": "automatic (now)",
             "before": "automatic (before: 10 s only)"}
    table = [[row["pace"], row["s_per_frame"], names[row["mode"]], len(row["keyframes"]),
              " ".join(map(str, row["keyframes"])), row["bytes"], f"{100 * row['size_vs_off']:+.1f}%"]
             for row in document["results"]]
    return "\n".join([
        f"# What checkpoints cost the video file ({document['size']}, {document['frames']} frames, "
        "default crf 18)", "",
        f"CPU: {env['cpu']}, torch {env['torch']}, code {env['git_commit']}. Input: H.264 at x264 "
        f"defaults with cuts at {', '.join(map(str, document['cuts']))}; its keyframes: "
        f"{' '.join(map(str, document['input_keyframes']))}.", "",
        "The engine is replaced by a stand-in that takes the engine's time per frame (`pace`) "
        f"and tints the frames; sleep and the 10 s minimum are divided by {document['speedup']:g} "
        "(same segment boundaries). Sizes and keyframe counts do not depend on the machine's load "
        f"(load average at start {env['load_average_start']}, at end {env['load_average_end']}).",
        "", markdown_table(["pace", "s/frame", "checkpoints", "keyframes", "at frames", "bytes",
                            "size vs off"], table), ""])


def _pace(text: str) -> tuple[str, float]:
    label, _, seconds = text.partition("=")
    return label, float(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--paces", type=_pace, nargs="+", default=[("448", 1.25), ("720p", 6.6)],
                        help="LABEL=SECONDS_PER_FRAME of the engine on this CPU")
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    document = run(args)
    stem = args.out / "bench_checkpoint_file"
    write_result(stem, document, markdown(document))
    print(markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
