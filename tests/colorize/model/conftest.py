"""Fixtures for the ColorMNet tests: synthetic weights (the crc32-normal-v1 rule) and golden cases.

The weights are built once per session from the packaged checkpoint spec, kept in memory, and
written once as safetensors for the tests that go through files or the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TESTS = Path(__file__).resolve().parents[2]
FIXTURES = TESTS / "fixtures"
GOLDEN = FIXTURES / "golden"
SPEC_PATH = TESTS.parent / "colorize" / "model" / "checkpoint_spec.json"


def _weights_rule():
    spec = importlib.util.spec_from_file_location("make_test_weights", FIXTURES / "make_test_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def checkpoint_spec() -> list[dict]:
    return json.loads(SPEC_PATH.read_text())["entries"]


@pytest.fixture(scope="session")
def synthetic_state_dict(checkpoint_spec) -> dict[str, torch.Tensor]:
    return _weights_rule().build_state_dict(checkpoint_spec)


@pytest.fixture(scope="session")
def synthetic_weights_file(synthetic_state_dict, tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("weights") / "colormnet-synthetic.safetensors"
    save_file({k: v.contiguous() for k, v in synthetic_state_dict.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def small_memory_colorizer(synthetic_weights_file):
    """The engine with memory bounds small enough that consolidation starts at the 3rd memory
    frame and pruning follows a few frames later (one per test module: it keeps video state)."""
    from colorize.engine import EngineConfig, MemorySettings, build_colorizer

    memory = MemorySettings(mem_every=1, max_mid_term_frames=3, min_mid_term_frames=2,
                            num_prototypes=20, max_long_term_elements=45)
    return build_colorizer(EngineConfig(weights=synthetic_weights_file, device="cpu",
                                        precision="fp32", memory=memory))


@pytest.fixture(scope="session")
def network(synthetic_state_dict):
    from colorize.model import ColorMNet

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    return ColorMNet.from_state_dict(synthetic_state_dict)


@dataclass
class GoldenCase:
    name: str
    root: Path
    knobs: dict
    frame_names: list[str]

    @property
    def reference_is_first_frame(self) -> bool:
        return self.knobs["path"] == "step"

    def frame(self, name: str) -> np.ndarray:
        return np.array(Image.open(self.root / "frames" / name).convert("RGB"))

    def frames(self) -> list[np.ndarray]:
        return [self.frame(name) for name in self.frame_names]

    def reference(self) -> np.ndarray:
        return np.array(Image.open(self.root / "ref.png").convert("RGB"))

    def expected_ab(self, name: str) -> np.ndarray:
        return np.load(self.root / "expected" / "ab" / (Path(name).stem + ".npy"))

    def expected_rgb(self, name: str) -> np.ndarray:
        return np.array(Image.open(self.root / "expected" / "rgb" / name))

    def intermediates(self) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self.root / "intermediates.safetensors"))


def load_golden(name: str) -> GoldenCase:
    root = GOLDEN / name
    case = json.loads((root / "case.json").read_text())
    names = sorted(p.name for p in (root / "frames").iterdir() if p.suffix == ".png")
    return GoldenCase(name, root, case["knobs"], names)


@pytest.fixture(params=["P1", "P2"])
def golden_case(request) -> GoldenCase:
    return load_golden(request.param)
