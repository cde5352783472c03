"""Fixtures for the batch tests: the helpers module on the path (workers import it by name),
synthetic weights written once, and a local Ray instance started once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def batch_weights(synthetic_weights_path) -> Path:
    """The crc32-normal-v1 synthetic checkpoint as a file (real shapes, made-up values)."""
    return synthetic_weights_path


@pytest.fixture(scope="session")
def ray_session():
    """Ray on this machine with 2 CPUs and no dashboard, shared by every Ray test."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'colorize-video[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    # Ray's workers inherit the environment of the raylet this starts: a runtime_env would
    # cost seconds of set-up for the same effect.
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "BATCH_TEST_DELAY", "OMP_NUM_THREADS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ["BATCH_TEST_DELAY"] = "0.1"
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 1024 * 1024, logging_level="WARNING")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield ray
    ray.shutdown()
