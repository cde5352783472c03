"""Fixtures: the ComfyUI stand-in (``comfy``), synthetic weights in its models/colormnet, tiny clips."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TESTS = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(TESTS / "colorize"))

import comfy_standin  # noqa: E402


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """``(state, nodes module)`` with the stand-in installed and a fresh model cache."""
    from colorize.comfyui.models import ModelCache

    state, nodes = comfy_standin.install(tmp_path / "comfyui", monkeypatch)
    monkeypatch.setattr(nodes, "CACHE", ModelCache())
    return state, nodes


@pytest.fixture(scope="session")
def synthetic_weights(tmp_path_factory) -> Path:
    """The project's synthetic ColorMNet weights (tests/fixtures/make_test_weights.py) as safetensors."""
    import json

    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("make_test_weights", TESTS / "fixtures" / "make_test_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entries = json.loads((TESTS.parent / "colorize" / "model" / "checkpoint_spec.json").read_text())["entries"]
    state = module.build_state_dict(entries)
    path = tmp_path_factory.mktemp("colormnet") / "synthetic.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture
def loaded(comfy, synthetic_weights):
    """The stand-in with the synthetic checkpoint in models/colormnet, loaded through the node."""
    import os

    state, nodes = comfy
    folder = state.models_dir / "colormnet"
    folder.mkdir(parents=True, exist_ok=True)
    # A hard link: symbolic links need extra rights on Windows, and a copy is 0.5 GB.
    try:
        os.link(synthetic_weights, folder / "synthetic.safetensors")
    except OSError:  # another file system
        import shutil

        shutil.copyfile(synthetic_weights, folder / "synthetic.safetensors")
    model = nodes.LoadColorMNet.execute(checkpoint="synthetic.safetensors", precision="fp32").args[0]
    return state, nodes, model
