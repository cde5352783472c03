"""Tiny synthetic clips and references for the ComfyUI tests, and IMAGE batches made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (64, 96)   # (H, W): padded to 112 x 112, cheap on CPU


def moving_gray(count: int, size=SIZE, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    height, width = size
    ramp = np.linspace(0, 255, width)[None, :] * np.ones((height, 1))
    return [np.repeat(np.clip(np.roll(ramp, 3 * t, axis=1) + rng.normal(0, 8, size), 0, 255)
                      .astype(np.uint8)[..., None], 3, axis=2) for t in range(count)]


def colourful(size=SIZE) -> np.ndarray:
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, 255 - x * 255 // width], -1).astype(np.uint8)


def as_image(*arrays: np.ndarray):
    """uint8 arrays -> a ComfyUI IMAGE batch (B, H, W, C) float in 0..1."""
    import torch

    return torch.from_numpy(np.stack(arrays)).float() / 255.0


def audio_only(path: Path) -> Path:
    """An AAC file with no video stream: what a VIDEO without frames is made from."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
