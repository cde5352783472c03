"""Fixtures for the colorize tests (helpers live in ``video_helpers.py``).

* ``fake_colorizer``: installs a deterministic test colorizer as the engine and points
  ``COLORIZE_WEIGHTS`` at a dummy file, so the CLI runs end to end without the model.
* ``red_reference``: a small solid reference image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from colorize import engine

sys.path.insert(0, str(Path(__file__).parent))

from video_helpers import FakeColorizer  # noqa: E402


@pytest.fixture
def fake_colorizer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeColorizer:
    """Install a :class:`FakeColorizer` as the engine and give the CLI a weights file."""
    fake = FakeColorizer()

    def build(config: engine.EngineConfig) -> FakeColorizer:
        fake.configs.append(config)
        return fake

    monkeypatch.setattr(engine, "build_colorizer", build)
    weights = tmp_path / "fake-weights.safetensors"
    weights.write_bytes(b"not used by the fake colorizer")
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(weights))
    return fake


@pytest.fixture
def red_reference(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "ref.png"
    Image.new("RGB", (32, 24), (200, 60, 40)).save(path)
    return path


