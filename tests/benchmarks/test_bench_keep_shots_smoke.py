"""Smoke test of benchmarks/bench_keep_shots.py on 3 shots of 2 frames at 64x64, so that the
script does not rot. No timings are asserted; the frame counts are."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_keep_shots.py"


def test_bench_keep_shots_colorizes_only_the_changed_shot_and_matches_the_full_run(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_keep_shots_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    assert module.main(["--shots", "3", "--frames-per-shot", "2", "--size", "64",
                        "--precision", "fp32", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "bench_keep_shots.json").read_text())
    assert [run["frames_colorized"] for run in document["runs"]] == [6, 0, 2, 6]
    assert document["rerun_equals_full_run"] is True
    assert "| full run (no --keep-shots) |" in (tmp_path / "bench_keep_shots.md").read_text()
