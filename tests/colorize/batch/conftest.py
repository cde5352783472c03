"""Fixtures for the batch tests: the helpers module on the path (workers import it by name),
synthetic weights written once, and a local Ray instance started once per session."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[1]
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def batch_weights(tmp_path_factory) -> Path:
    """The crc32-normal-v1 synthetic checkpoint as a file (real shapes, made-up values)."""
    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location(
        "make_test_weights", TESTS / "fixtures" / "make_test_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entries = json.loads((TESTS.parent / "colorize" / "model" / "checkpoint_spec.json")
                         .read_text())["entries"]
    path = tmp_path_factory.mktemp("batch-weights") / "colormnet-synthetic.safetensors"
    save_file({k: v.contiguous() for k, v in module.build_state_dict(entries).items()}, str(path))
    return path


@pytest.fixture(scope="session")
def ray_session():
    """Ray on this machine with 2 CPUs and no dashboard, shared by every Ray test."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'colorize-video[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 1024 * 1024, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path, "BATCH_TEST_DELAY": "0.1",
                                       "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()
