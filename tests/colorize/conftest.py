"""Fixtures for the colorize tests (helpers live in ``video_helpers.py``).

* ``fake_colorizer``: installs a deterministic test colorizer as the engine and points
  ``COLORIZE_WEIGHTS`` at a dummy file, so the CLI runs end to end without the model.
* ``red_reference``: a small solid reference image.
* ``synthetic_weights_path``: the full-size synthetic checkpoint (crc32-normal-v1 rule: real
  keys and shapes, made-up values) as a safetensors file, written once per session, for tests
  that run the real engine through files or the CLI.
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




@pytest.fixture(scope="session")
def synthetic_weights_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util
    import json

    from safetensors.torch import save_file

    tests = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "make_test_weights", tests / "fixtures" / "make_test_weights.py")
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    entries = json.loads((tests.parent / "colorize" / "model" / "checkpoint_spec.json")
                         .read_text())["entries"]
    path = tmp_path_factory.mktemp("synthetic-weights") / "colormnet-synthetic.safetensors"
    save_file({k: v.contiguous() for k, v in rule.build_state_dict(entries).items()}, str(path))
    return path
