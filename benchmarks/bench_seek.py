"""What a split run and a resume read and decode from the input: seeking against decoding from
the start.

The figures are counts, so the machine's load does not change them: bytes read by this process
(``read_chars`` of ``/proc/self/io``, every thread, FFmpeg's included) and frames the decoder
produced (counted by wrapping ``VideoFileSource._decode_all``, the one place a video file is
decoded). The model is left out: what is measured is the decode path of each batch task,
through the batch's own code:

* ``single``: the frame source of a whole-video task (``Source.frames()`` to the end);
* ``split``: ``colorize batch --shots FILE``'s tasks: the ``cuts`` task (``execute_task``),
  then each ``shot`` task's frame source (``tasks._shot_frames``, with the frame index the cuts
  task wrote where this code has one), then the ``stitch`` task's read of the input (opening
  it, and the audio packets its join copies);
* ``resume``: a resumed run at 90% of the film: the pipeline's frame source from the
  checkpoint's position (``frames_from`` with the anchor a checkpoint keeps, here taken from the
  index; the old code decodes every frame and drops those before the position), and the join's
  audio read.

"Today's" code is measured by running this same script against an older commit checked out in
a git worktree (``--old-tree``; ``git worktree add /tmp/old <commit>``), so both columns come
from the same clip and the same measurement.

    python benchmarks/bench_seek.py [--frames 2000] [--shots 20] [--old-tree /tmp/old]

Writes ``benchmarks/results/bench_seek.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS, GOP = 1920, 1080, 24, 48


# -- the clip ------------------------------------------------------------------------------------

def write_film(path: Path, frames: int, shots: int) -> list[int]:
    """A 1080p H.264 film with AAC audio: ``shots`` shots of equal length, each a still of its
    own with a square moving across it; keyframes every 48 frames whatever the cuts (so shots
    start mid-GOP), B-frames. Returns the cuts."""
    import av

    cuts = [round(i * frames / shots) for i in range(1, shots)]
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options={
            "preset": "superfast", "crf": "28",
            "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=3"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.time_base = Fraction(1, FPS)
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        starts = [0] + cuts
        still = None
        samples_done = 0
        for index in range(frames):
            if index in starts:
                # Texture fine enough to cost bits (about 100 KB a frame, as a film would).
                luma = rng.integers(30, 220, (HEIGHT // 2, WIDTH // 2 + 64), dtype=np.uint8)
                still = np.kron(luma, np.ones((2, 2), np.uint8))
                chroma = np.full((HEIGHT // 2, WIDTH), int(rng.integers(90, 160)), np.uint8)
            shift = 2 * (index % 64)     # a slow pan
            planes = np.ascontiguousarray(still[:, shift:shift + WIDTH])
            x = (index * 17) % (WIDTH - 128)
            planes[400:528, x:x + 128] = 255
            frame = av.VideoFrame.from_ndarray(np.vstack([planes, chroma]), format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
            while samples_done < (index + 1) * 48000 // FPS:
                t = (np.arange(1024) + samples_done) / 48000
                tone = (0.1 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp",
                                                   layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, samples_done
                container.mux(audio.encode(chunk))
                samples_done += 1024
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return cuts


# -- measuring (runs inside the tree under test) -------------------------------------------------

def read_chars() -> int:
    with open("/proc/self/io", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


class Meter:
    """Bytes read and frames decoded during one step."""

    def __init__(self) -> None:
        from colorize.video import source

        self.decoded = 0
        original = source.VideoFileSource._decode_all
        meter = self

        def counting(self_source):
            for frame in original(self_source):
                meter.decoded += 1
                yield frame

        source.VideoFileSource._decode_all = counting

    def step(self, run) -> dict:
        decoded, read, started = self.decoded, read_chars(), time.perf_counter()
        run()
        return {"bytes_read": read_chars() - read, "decoded_frames": self.decoded - decoded,
                "seconds": round(time.perf_counter() - started, 2)}


def measure(film: Path, cuts: list[int], frame_count: int, work: Path) -> dict:
    from colorize.batch import tasks
    from colorize.batch.plan import build_plan
    from colorize.video.join import SidePacketReader
    from colorize.video.source import open_source

    meter = Meter()
    (work / "cuts.txt").write_text("".join(f"{cut}\n" for cut in cuts))
    plan = build_plan(film.parent, work / "out", {"shots": str(work / "cuts.txt")})
    [job] = plan.jobs
    context = tasks.WorkerContext(tasks.WorkerSettings(weights="unused"))
    index_path = work / "frame-index.json"
    has_index = "frame_index" in tasks.Task.__dataclass_fields__
    results: dict = {"seeks": has_index}

    def whole() -> None:
        with open_source(film) as source:
            for _ in source.frames():
                pass

    def cuts_task() -> None:
        extra = {"frame_index": str(index_path)} if has_index else {}
        result = tasks.execute_task(context, tasks.Task("0:cuts", "cuts", job, **extra))
        assert result.ok, result.error

    def shot_tasks() -> None:
        starts = [0] + cuts
        for start, end in zip(starts, starts[1:] + [frame_count]):
            with tasks._open(job) as source:
                if has_index:
                    tasks._use_frame_index(source, str(index_path))
                count = sum(1 for _ in tasks._shot_frames(source, start, end))
            assert count == end - start, (start, end, count)

    def stitch_input() -> None:
        with tasks._open(job) as source:
            side = SidePacketReader(source)
            side.take(None)
            side.close()

    results["single"] = meter.step(whole)
    results["cuts_task"] = meter.step(cuts_task)
    results["shot_tasks"] = meter.step(shot_tasks)
    results["stitch_task_input"] = meter.step(stitch_input)
    position = frame_count * 9 // 10
    if has_index:
        # The anchor a checkpoint holds comes from the interrupted run's own frames; here it is
        # taken from a scan, which is not counted (a resume does not scan).
        with open_source(film) as source:
            anchor = source.frame_index().anchor_for(position)

        def resumed() -> None:
            with open_source(film) as source:
                count = sum(1 for _ in source.frames_from(position, anchor))
            assert count == frame_count - position
        results["resume_90"] = meter.step(resumed)
        results["resume_anchor_frame"] = anchor.frame
    else:
        def decoded_and_dropped() -> None:   # the old pipeline: every frame, those before skipped
            with open_source(film) as source:
                count = sum(1 for f in source.frames() if f.meta.index >= position)
            assert count == frame_count - position
        results["resume_90"] = meter.step(decoded_and_dropped)
    results["resume_position"] = position
    results["resume_join_input"] = meter.step(stitch_input)
    return results


# -- driver --------------------------------------------------------------------------------------

def run_tree(tree: Path, film: Path, cuts: list[int], frames: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    args = {"film": str(film), "cuts": cuts, "frames": frames, "work": str(work)}
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--measure", json.dumps(args)], env=env,
                          capture_output=True, text=True, check=False, cwd=str(tree))
    if done.returncode:
        raise SystemExit(f"measuring in {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def totals(result: dict) -> dict:
    split = ("cuts_task", "shot_tasks", "stitch_task_input")
    resume = ("resume_90", "resume_join_input")
    return {
        "split_bytes": sum(result[k]["bytes_read"] for k in split),
        "split_decoded": sum(result[k]["decoded_frames"] for k in split),
        "resume_bytes": sum(result[k]["bytes_read"] for k in resume),
        "resume_decoded": sum(result[k]["decoded_frames"] for k in resume),
    }


def markdown(document: dict) -> str:
    size = document["film_bytes"]
    rows = []
    for label, key in (("seeking (this tree)", "new"), ("decode from the start (old tree)", "old")):
        result = document.get(key)
        if result is None:
            continue
        total = totals(result)
        rows.append(f"| {label} | {result['single']['bytes_read'] / size:.2f}x, "
                    f"{result['single']['decoded_frames']} | "
                    f"{total['split_bytes'] / size:.2f}x, {total['split_decoded']} | "
                    f"{total['resume_bytes'] / size:.2f}x, {total['resume_decoded']} |")
    lines = [
        "# Seeking: bytes read from the input and frames decoded",
        "",
        f"Film: {document['frames']} frames 1920x1080 H.264 (GOP {GOP}, B-frames, keyframes not "
        f"at the cuts) with AAC audio, {document['shots']} shots, {size / 1e6:.1f} MB. "
        "Figures are counts (load does not change them): bytes this process read "
        "(`read_chars`) as a multiple of the file size, and frames decoded.",
        "",
        "What was measured: the decode path of each batch task through the batch's own code "
        "(no model): a whole-video task's frame source; `colorize batch --shots FILE`'s cuts "
        "task, every shot task's frame source and the stitch task's read of the input (its "
        "audio); a resume at 90% (the frame source from the checkpoint's position plus the "
        "join's audio read).",
        "",
        "| code | single run: read, decoded | split run (all tasks): read, decoded | "
        "resume at 90%: read, decoded |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "Per step (bytes read / frames decoded):",
        "",
    ]
    for key in ("new", "old"):
        result = document.get(key)
        if result is None:
            continue
        lines.append(f"- {key}: " + "; ".join(
            f"{step} {value['bytes_read'] / size:.2f}x / {value['decoded_frames']}"
            for step, value in result.items() if isinstance(value, dict)))
    lines += ["", f"Measured {document['date']} (old tree: {document.get('old_commit')}, this "
              f"tree: {document['commit']}); load average {document['load_average']}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--old-tree", type=Path, help="a worktree of the code to compare with")
    parser.add_argument("--film", type=Path, help="reuse a film written by an earlier run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        spec = json.loads(args.measure)
        print(json.dumps(measure(Path(spec["film"]), spec["cuts"], spec["frames"],
                                 Path(spec["work"]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-seek-") as temp:
        work = Path(temp)
        film = args.film or work / "film" / "film.mp4"
        cuts = [round(i * args.frames / args.shots) for i in range(1, args.shots)]
        if args.film is None:
            film.parent.mkdir()
            started = time.perf_counter()
            cuts = write_film(film, args.frames, args.shots)
            print(f"film written in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        from PIL import Image

        Image.new("RGB", (64, 36), (200, 120, 40)).save(film.parent / "film.png")  # the plan's
        git = lambda *a, tree=ROOT: subprocess.run(  # noqa: E731
            ["git", "-C", str(tree), *a], capture_output=True, text=True).stdout.strip()
        document = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "frames": args.frames,
                    "shots": args.shots, "film_bytes": film.stat().st_size,
                    "commit": git("rev-parse", "--short", "HEAD"),
                    "load_average": [round(x, 2) for x in os.getloadavg()]}
        document["new"] = run_tree(ROOT, film, cuts, args.frames, work / "new")
        if args.old_tree is not None:
            document["old_commit"] = git("rev-parse", "--short", "HEAD", tree=args.old_tree)
            document["old"] = run_tree(args.old_tree, film, cuts, args.frames, work / "old")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_seek.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out / "bench_seek.md").write_text(markdown(document))
    print(markdown(document))


if __name__ == "__main__":
    main()
