"""Fixtures for the examples' tests: the examples and the project's ComfyUI stand-in on the path,
a started stand-in, and a small registry of model-free workflows the stand-in can run or fail."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(ROOT / "tests" / "runner"))

from fake_server import FakeComfyServer, FakeConfig  # noqa: E402

from runner.registry import Registry, load_registry  # noqa: E402


def _runner_fixtures():
    """tests/runner/conftest.py under another module name (this file is 'conftest' too)."""
    spec = importlib.util.spec_from_file_location("runner_test_fixtures", ROOT / "tests" / "runner" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dead_server_url = _runner_fixtures().dead_server_url  # a loopback URL nothing listens on


def _graph(middle: str, inputs: dict) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": middle, "inputs": {"image": ["1", 0], **inputs}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bot/out"}},
    }


#: id -> the class of its middle node. The stand-in is told to fail or slow down by class.
WORKFLOWS = {
    "solid": ("ImageInvert", {}),
    "blur": ("ImageBlur", {"blur_radius": 1, "sigma": 1.0}),              # fails with a node error
    "sharpen": ("ImageSharpen", {"sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0}),  # runs out of memory
    "slow": ("ImageScaleBy", {"upscale_method": "nearest-exact", "scale_by": 1.0}),  # many progress steps
}


@pytest.fixture(scope="session")
def test_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    folder = tmp_path_factory.mktemp("registry")
    entries = []
    for entry_id, (middle, inputs) in WORKFLOWS.items():
        (folder / f"{entry_id}.json").write_text(json.dumps(_graph(middle, inputs)))
        entries.append({
            "id": entry_id, "title": entry_id, "file": f"{entry_id}.json",
            "description": f"EmptyImage -> {middle} -> SaveImage",
            "parameters": {"size": {"type": "int", "min": 1, "max": 4096, "default": 64,
                                    "description": "Width and height.",
                                    "targets": [{"node": "1", "input": "width"}, {"node": "1", "input": "height"}]}},
        })
    (folder / "registry.json").write_text(json.dumps({"workflows": entries}))
    return load_registry(folder / "registry.json")


@pytest.fixture
def comfy_server() -> Iterator[FakeComfyServer]:
    config = FakeConfig(
        fail={"ImageBlur": ("RuntimeError", "blur exploded"),
              "ImageSharpen": ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB")},
        progress_steps={"ImageScaleBy": 200}, step_delay=0.02)
    server = FakeComfyServer(config).start()
    yield server
    server.stop()
