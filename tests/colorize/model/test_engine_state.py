"""Engine state API: a video's state saved after frame k and restored into a fresh run continues
exactly (bit for bit on CPU fp32), through consolidation, pruning, keyframes and a cut."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from colorize.engine import VideoGuide, VideoState

SIZE = (112, 112)   # one 7 x 7 grid: cheap on CPU


def video(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, SIZE[1])[None, :] * np.ones((SIZE[0], 1))
    frames = []
    for t in range(count):
        gray = np.clip(np.roll(ramp, 5 * t, axis=1) + rng.normal(0, 10, SIZE), 0, 255)
        frames.append(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2))
    return frames


def reference(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    base = np.stack([x * 255 // SIZE[1], y * 255 // SIZE[0], 255 - x * 255 // SIZE[1]], -1)
    return np.clip(base + rng.integers(-30, 30, 3), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colorizer(small_memory_colorizer):
    return small_memory_colorizer


def run(colorizer, frames, guide: VideoGuide, save_after: int | None = None):
    saved: list[VideoState] = []
    user_callback = guide.on_frame

    def on_frame(record):
        if user_callback is not None:
            user_callback(record)
        if record.index == save_after:
            saved.append(colorizer.snapshot())

    guide.on_frame = on_frame
    outputs = [ab.clone() for _, ab in colorizer.predict(frames, reference(0), guide)]
    return outputs, (saved[0] if saved else None)


def through_files(state: VideoState) -> VideoState:
    """What a checkpoint does: safetensors bytes and JSON text, then back."""
    blob = save_tensors({name: t.cpu() for name, t in state.state_tensors().items()})
    text = json.dumps(state.state_meta())
    return VideoState.restore(load_tensors(blob), json.loads(text))


@pytest.mark.parametrize("save_after", [4, 9])
def test_restored_state_continues_bit_for_bit(colorizer, save_after):
    frames = video(14)
    cuts = {7}

    def guide():
        return VideoGuide(keyframes={3: reference(1), 10: reference(2)},
                          is_cut=lambda t: t in cuts)

    whole, state = run(colorizer, frames, guide(), save_after=save_after)
    bank = colorizer._video.propagator.memory
    assert state is not None and state.next_frame == save_after + 1
    assert bank.compressions > 0
    saved_bank = state.meta["propagator"]["memory"]
    if save_after == 4:
        # Saved after consolidation, pruning and a keyframe reference (two permanent frames).
        assert saved_bank["prunings"] > 0 and saved_bank["permanent_elements"] == 2 * 49
    else:
        # Saved in the second shot, whose memory was rebuilt at the cut and consolidated again.
        assert state.meta["shot"] == 1 and saved_bank["compressions"] > 0

    resumed_guide = guide()
    resumed_guide.start = through_files(state)
    rest, _ = run(colorizer, frames[save_after + 1:], resumed_guide)
    assert len(rest) == len(frames) - save_after - 1
    for t, (a, b) in enumerate(zip(whole[save_after + 1:], rest), start=save_after + 1):
        assert torch.equal(a, b), f"frame {t} differs after restoring"


def test_state_from_another_mode_or_version_is_refused(colorizer):
    _, state = run(colorizer, video(3), VideoGuide(), save_after=0)
    meta = dict(state.state_meta(), reference_is_first_frame=True)
    guide = VideoGuide(start=VideoState.restore(state.state_tensors(), meta))
    with pytest.raises(ValueError, match="ref-is-first-frame"):
        list(colorizer.predict(video(3)[1:], reference(0), guide))
    with pytest.raises(ValueError, match="version"):
        VideoState.restore(state.state_tensors(), dict(state.state_meta(), version=0))
    with pytest.raises(ValueError, match="lacks tensors"):
        VideoState.restore({}, state.state_meta())
