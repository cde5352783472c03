"""Smoke test of benchmarks/bench_shots.py on a small input, so that it does not rot (no timings asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_shots.py"


def test_bench_shots_finds_the_planted_cuts_and_writes_both_files(tmp_path: Path) -> None:
    pytest.importorskip("scenedetect", reason="PySceneDetect (colorize-video[shots]) not installed")
    spec = importlib.util.spec_from_file_location("bench_shots_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    assert module.main(["--frames", "101", "--warmup", "2", "--sizes", "224x224", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "bench_shots.json").read_text())
    assert [(r["size"], r["downscale"]) for r in document["runs"]] == [("224x224", "to 256"), ("224x224", "none")]
    assert all(r["cuts_found"] == [50, 100] and r["cpu_ms_per_frame"] > 0 for r in document["runs"])
    assert "| 224x224 | to 256 |" in (tmp_path / "bench_shots.md").read_text()
