"""Smoke test of benchmarks/bench_keyframes.py at 64x48 with few frames, so that it does not rot
(no timings asserted). The engine part is left out (``--colorize-frames 0``): building the
synthetic checkpoint alone takes half a minute, and the other benchmark smoke tests run the
engine already."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_keyframes_times_pick_pass_and_colorize(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_keyframes_smoke",
                                                  BENCHMARKS / "bench_keyframes.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    code = bench.main(["--sizes", "64x48", "--frames", "60", "--clip-frames", "60",
                       "--colorize-frames", "0", "--out", str(tmp_path)])
    assert code == 0
    document = json.loads((tmp_path / "bench_keyframes.json").read_text())
    run = document["runs"][0]
    assert [p["sample_every"] for p in run["pick"]] == [2, 1]
    assert all(p["keyframes"] == 2 and p["ms_per_frame_mean"] > 0 for p in run["pick"])
    assert run["pass"]["keyframes_found"] == 2 and run["colorize"]["frames"] == 0
    table = (tmp_path / "bench_keyframes.md").read_text()
    assert "| 64x48 | 2 |" in table and "not measured" in table
