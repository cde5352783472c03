"""Helpers for the ``--generate`` tests: a keyframes folder, the ComfyUI stand-in, a model-free tint.

Fixtures (import them into a test module): ``picked`` (clip and keyframes folder, once per
module) and ``folder`` (a private copy of that folder per test).

``keyframe_tint.api.json`` is an image workflow of ComfyUI core nodes only: the gray still is
scaled by 1.5 and overlay-blended half way with a warm colour (0xE07030), then saved. On the fake
server (``tests/runner/fake_server.py``) :func:`tint` does the same to the uploaded still, so the
output is a coloured picture of another size and brightness, as an edit model's would be; on a
real ComfyUI the nodes themselves do it.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[1]
sys.path.insert(0, str(TESTS / "runner"))
sys.path.insert(0, str(TESTS / "colorize"))

from fake_server import FakeComfyServer, FakeConfig  # noqa: E402,F401

TINT_WORKFLOW = HERE / "keyframe_tint.api.json"
TINT_COLOUR = np.array((0xE0, 0x70, 0x30), dtype=np.float64) / 255.0
TINT_SCALE = 1.5
# keyframes.json of the four-shot film with its cut list: shot starts 0, 20, 36, 54; the shot at
# 54 returns to the first set-up, so groups are {0, 54}, {20}, {36}.
KEYFRAMES = (0, 20, 36, 54)
STILLS = {0: (0, 54), 20: (20,), 36: (36,)}


def tint_array(gray_rgb: np.ndarray) -> np.ndarray:
    """What the tint workflow makes of an RGB uint8 still (ImageScaleBy + ImageBlend overlay 0.5)."""
    picture = Image.fromarray(gray_rgb)
    picture = picture.resize((round(picture.width * TINT_SCALE), round(picture.height * TINT_SCALE)),
                             Image.Resampling.BILINEAR)
    a = np.asarray(picture).astype(np.float64) / 255.0
    overlay = np.where(a <= 0.5, 2 * a * TINT_COLOUR, 1 - 2 * (1 - a) * (1 - TINT_COLOUR))
    return np.clip(np.rint((0.5 * a + 0.5 * overlay) * 255.0), 0, 255).astype(np.uint8)


def tint(png: bytes) -> bytes:
    """The fake server's ``image_filter``: PNG bytes of a still -> PNG bytes of its tinted copy."""
    with Image.open(io.BytesIO(png)) as picture:
        rgb = np.asarray(picture.convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(tint_array(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_keyframes_folder(root: Path) -> tuple[Path, Path]:
    """``colorize keyframes`` on the four-shot film: (clip, folder with gray/ and keyframes.json)."""
    from keyframe_clips import film
    from video_helpers import invoke, write_video

    clip = write_video(root / "film.mp4", film().frames)
    (root / "cuts.txt").write_text("20\n36\n54\n")
    folder = root / "refs"
    invoke(["keyframes", clip, "-o", folder, "--shots", root / "cuts.txt", "-q"])
    return clip, folder


def copy_folder(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


@pytest.fixture(scope="module")
def picked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_keyframes_folder(tmp_path_factory.mktemp("picked"))


@pytest.fixture
def folder(picked: tuple[Path, Path], tmp_path: Path) -> Path:
    return copy_folder(picked[1], tmp_path / "refs")


def lightness(rgb: np.ndarray) -> np.ndarray:
    """Lab L of uint8 RGB (H, W, 3), as the colorizer computes it."""
    import torch

    from colorize.color import rgb_to_lab

    return rgb_to_lab(torch.from_numpy(np.array(rgb, order="C")).permute(2, 0, 1))[0].numpy()


def gray_level(lab_l: np.ndarray) -> np.ndarray:
    """The 8-bit grey level whose Lab L is ``lab_l``."""
    y = np.where(lab_l > 8.0, ((lab_l + 16.0) / 116.0) ** 3, lab_l / 903.3)
    return 255.0 * np.where(y > 0.0031308, 1.055 * np.power(y, 1 / 2.4) - 0.055, 12.92 * y)


def chroma(rgb: np.ndarray) -> float:
    """Mean Lab chroma: 0 for a grey picture."""
    import torch

    from colorize.color import rgb_to_lab

    lab = rgb_to_lab(torch.from_numpy(np.array(rgb, order="C")).permute(2, 0, 1)).numpy()
    return float(np.hypot(lab[1], lab[2]).mean())


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))
