"""Helpers for the batch tests: a folder of tiny clips, a fake engine importable by workers.

Worker processes (spawned, or Ray's) import this module by name, so it has no test-only
imports beyond the project and numpy/PyAV.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
from PIL import Image

SIZE = 64


def clip_frames(count: int, seed: int, size: int = SIZE) -> list[np.ndarray]:
    """Gray frames with a moving ramp; ``seed`` makes each clip different."""
    ramp = np.linspace(0, 255, size)[None, :] * np.ones((size, 1))
    frames = []
    for t in range(count):
        gray = np.clip(np.roll(ramp, 5 * t + 7 * seed, axis=1), 0, 255).astype(np.uint8)
        frames.append(np.repeat(gray[..., None], 3, axis=2))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    """H.264 at crf 0 (lossless luma) so decoded inputs are stable."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0"})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_reference(path: Path, colour: tuple[int, int, int], size: int = SIZE) -> Path:
    Image.new("RGB", (size, size), colour).save(path)
    return path


def make_folder(folder: Path, videos: int = 8, frames: int = 4, corrupt: int | None = None) -> Path:
    """``clip_00.mp4`` + ``clip_00.png`` ... ; ``corrupt``: that clip is cut in half."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(videos):
        clip = write_clip(folder / f"clip_{number:02d}.mp4", clip_frames(frames, number))
        write_reference(folder / f"clip_{number:02d}.png", (40 + 20 * number, 120, 200 - 15 * number))
        if number == corrupt:
            data = clip.read_bytes()
            clip.write_bytes(data[: len(data) // 2])
    return folder


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def lines(outdir: Path) -> list[dict]:
    path = outdir / "batch.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class FakeColorizer:
    """Tints each frame by the reference's mean colour, taking ``delay`` seconds per frame
    (``BATCH_TEST_DELAY``), so that a worker can be killed while it runs."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray) -> Iterator[np.ndarray]:
        tint = reference.reshape(-1, 3).mean(axis=0)
        for frame in frames:
            time.sleep(self.delay)
            yield np.clip(frame.astype(np.float32) * 0.5 + tint * 0.5, 0, 255).astype(np.uint8)


def build_fake(config) -> FakeColorizer:
    return FakeColorizer(float(os.environ.get("BATCH_TEST_DELAY", "0.05")))
