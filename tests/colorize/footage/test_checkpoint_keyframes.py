"""Automatic checkpoints do not cost the video file: segments (each starting with a keyframe)
are no shorter than the encoder's own keyframe interval unless a shot starts there.

A fast stand-in colorizer that can save its state runs the real CLI, pipeline, checkpoints and
segment join on a 600-frame 64x48 clip. The time part of the automatic rule is set to zero, so
only the keyframe rule keeps checkpoints apart (before it, a checkpoint followed every frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
import pytest

from colorize import engine
from colorize.engine.guide import FrameRecord, VideoGuide
from colorize.engine.state import VideoState
from colorize.footage import resume
from colorize.footage.resume import CheckpointSettings, describe_checkpoints
from colorize.video.sink import KEYFRAME_INTERVAL
from video_helpers import FakeColorizer, invoke, write_video

FRAMES, CUT = 600, 300


class SavingFake(FakeColorizer):
    """The fake colorizer with a (trivial) state the checkpoints can save."""

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray,
                 guide: VideoGuide | None = None) -> Iterator[np.ndarray]:
        for index, out in enumerate(super().colorize(frames, reference)):
            self._next = index + 1
            if guide is not None and guide.on_frame is not None:
                guide.on_frame(FrameRecord(index, 1.0, 0, 0))
            yield out

    def snapshot(self) -> VideoState:
        import torch

        return VideoState({"step": torch.tensor([self._next])}, {"next_frame": self._next})


def clip(folder: Path) -> Path:
    """A textured scene panning right, replaced by another one at ``CUT``."""
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 255, (48, 96), dtype=np.uint8) for _ in range(2)]
    frames = []
    for index in range(FRAMES):
        scene = scenes[index >= CUT]
        gray = np.roll(scene, index, axis=1)[:, :64]
        frames.append(np.repeat(gray[:, :, None], 3, axis=2))
    return write_video(folder / "in.mp4", frames, fps=25)


def keyframes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
        return [rank for rank, i in enumerate(order) if packets[i].is_keyframe]


@pytest.fixture
def saving_fake(monkeypatch, tmp_path) -> SavingFake:
    fake = SavingFake()
    monkeypatch.setattr(engine, "build_colorizer", lambda config: fake)
    weights = tmp_path / "fake-weights.safetensors"
    weights.write_bytes(b"not used by the fake colorizer")
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(weights))
    monkeypatch.setattr(resume, "AUTO_MIN_SECONDS", 0.0)
    return fake


def test_default_checkpoints_keep_keyframes_and_size(tmp_path, red_reference, saving_fake):
    source = clip(tmp_path)
    shots = tmp_path / "cuts.txt"
    shots.write_text(f"{CUT}\n")
    common = [source, "--ref", red_reference, "--shots", shots, "-q"]
    invoke([*common, "-o", tmp_path / "checkpointed.mp4"])
    invoke([*common, "-o", tmp_path / "plain.mp4", "--checkpoint-every", "0"])
    interval = KEYFRAME_INTERVAL["libx264"]
    ours, plain = keyframes(tmp_path / "checkpointed.mp4"), keyframes(tmp_path / "plain.mp4")
    # No denser than the cut plus the encoder's own interval: two keyframes closer than the
    # interval only where one of them is the cut (x264 keeps its own count across the cut).
    for before, after in zip(ours, ours[1:]):
        assert after - before >= interval or CUT in (before, after), ours
    assert len(ours) <= 1 + 1 + FRAMES // interval          # frame 0, the cut, the interval
    assert len(ours) <= len(plain) + 1, (ours, plain)
    size, plain_size = (tmp_path / "checkpointed.mp4").stat().st_size, (tmp_path / "plain.mp4").stat().st_size
    assert abs(size - plain_size) <= 0.05 * plain_size, (size, plain_size)


def test_plan_says_what_a_crash_loses():
    line = describe_checkpoints(CheckpointSettings(), 250, 1.7)
    assert "250 frames" in line and "7.1 min" in line
    assert "loses at most 8 s" in describe_checkpoints(CheckpointSettings(every=20), 250, 0.4)
    assert "off" in describe_checkpoints(CheckpointSettings(every=0), 250, 0.4)
    # PNG frames: no keyframes to keep, so the time rule alone decides.
    assert "frames (the encoder" not in describe_checkpoints(CheckpointSettings(), 1, 0.4)
