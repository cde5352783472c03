"""Synthetic films for the keyframe tests: distinct set-ups made of shapes on a gradient.

Each set-up (a seed) is a fixed picture larger than the frame: a luma gradient, five ellipses of
their own grey levels, and fine grain (so frames have detail to be sharp or blurred). A shot
pans across it one pixel a frame, so consecutive frames differ a little, as footage does; a
set-up that returns later starts from another place in the pan, as a camera put back in the
same place would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT = 64, 48


def setup_picture(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The float luma picture of set-up ``seed``, 32 px wider and 16 px taller than a frame."""
    rng = np.random.default_rng(seed)
    tall, wide = height + 16, width + 32
    yy, xx = np.mgrid[0:tall, 0:wide].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    picture = 60 + 80 * ((np.cos(angle) * xx + np.sin(angle) * yy) / max(tall, wide) % 1.0)
    for _ in range(5):
        cy, cx = rng.uniform(0, tall), rng.uniform(0, wide)
        ry, rx = rng.uniform(4, tall / 3), rng.uniform(4, wide / 3)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        picture[inside] = rng.uniform(20, 235)
    return picture + rng.normal(0, 6, picture.shape)


def shot_frames(seed: int, count: int, *, start: int = 0, fade_in: int = 0,
                width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """``count`` grey RGB frames panning over set-up ``seed`` from pan position ``start``; the
    first ``fade_in`` frames fade up from black (frame 0 is black)."""
    picture = setup_picture(seed, width, height)
    frames = []
    for i in range(count):
        offset = (start + i) % 32
        luma = picture[8:8 + height, offset:offset + width]
        if i < fade_in:
            luma = luma * (i / fade_in)
        grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
        frames.append(np.repeat(grey[..., None], 3, axis=2))
    return frames


def box_blur(frame: np.ndarray, radius: int = 3) -> np.ndarray:
    """A heavily blurred copy (motion blur / defocus stand-in)."""
    padded = np.pad(frame.astype(np.float32), ((radius, radius), (radius, radius), (0, 0)),
                    mode="edge")
    out = np.zeros(frame.shape, np.float32)
    size = 2 * radius + 1
    for dy in range(size):
        for dx in range(size):
            out += padded[dy:dy + frame.shape[0], dx:dx + frame.shape[1]]
    return np.rint(out / size**2).astype(np.uint8)


@dataclass
class Film:
    frames: list[np.ndarray]
    cuts: list[int]
    fade_end: int  # first frame of shot 0 after its fade from black


def film() -> Film:
    """Four shots: A (fading up from black over 8 frames), B, C, and A again (the returning
    set-up), 20 + 16 + 18 + 16 = 70 frames, cuts at 20, 36, 54."""
    a = shot_frames(1, 20, fade_in=8)
    b = shot_frames(2, 16)
    c = shot_frames(3, 18)
    a_again = shot_frames(1, 16, start=5)
    return Film(a + b + c + a_again, cuts=[20, 36, 54], fade_end=8)
