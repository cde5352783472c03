"""Smoke test of benchmarks/bench_footage.py: 21 frames (20 cuts, 5 references) at 112x112, so
the script does not rot. No timings are asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_footage_benchmark_runs_through_cuts_and_keyframes(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_smoke_footage", BENCHMARKS / "bench_footage.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    cuts, keyframes = bench.layout(21)
    assert len(cuts) == 20 and len(keyframes) == 4
    code = bench.main(["--frames", "21", "--every", "7", "--out", str(tmp_path)])
    assert code == 0
    written = json.loads(next(tmp_path.glob("colorize_footage_cpu_*.json")).read_text())
    assert [s["frame"] for s in written["samples"]] == [7, 14, 21]
    assert written["samples"][-1]["shot"] == 20 and not written["stopped_early"]
    assert all(0.0 <= s["mean_score"] <= 1.0 for s in written["samples"])
