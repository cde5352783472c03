"""Smoke tests of the colorize benchmark scripts on a tiny input, so that they do not rot.

They run the scripts' real code paths (engine, plain frame-by-frame loop, bf16 comparison,
long-video sampler) on two 112x112 frames with the synthetic weights, and check the results are
complete and that the engine and the plain loop agree. No timings are asserted.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_smoke_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    sys.path.insert(0, str(BENCHMARKS))
    from colorize_bench_common import weights_file

    with weights_file(None) as (path, label):
        yield path, label


def test_cpu_benchmark_core_runs_and_engine_matches_plain_loop(weights, tmp_path):
    bench = _load("bench_colorize")
    settings = bench.CpuSettings(sizes=[("112x112", 112, 112)], timed_frames=1, warmup_frames=1,
                                 bf16=True, out=tmp_path, plot=False, chunk_size=1)
    document = bench.run_cpu_benchmark(*weights, settings)

    written = json.loads(next(tmp_path.glob("colorize_cpu_*.json")).read_text())
    assert written["benchmark"] == "colorize-cpu"
    modes = {(run["precision"], run["mode"]) for run in written["runs"]}
    assert modes == {("fp32", "predict"), ("fp32", "colorize"), ("fp32", "frame-by-frame"),
                     ("bf16", "predict"), ("bf16", "colorize")}
    assert all(run["s_per_frame"] > 0 and run["timed_frames"] >= 1 for run in written["runs"])
    comparison = document["comparisons"]["112x112"]
    assert comparison["frames_compared"] >= 2
    assert comparison["engine_fp32_vs_frame_by_frame_ab_max_abs"] <= 1e-3
    assert comparison["bf16_vs_fp32_rgb_psnr_db"] > 0
    markdown = next(tmp_path.glob("colorize_cpu_*.md")).read_text()
    assert "112x112" in markdown and "frame-by-frame fp32" in markdown


def test_memory_benchmark_samples_every_frame(weights, tmp_path, capsys):
    bench = _load("bench_memory")
    code = bench.main(["--device", "cpu", "--size", "112", "--frames", "2", "--every", "1",
                       "--weights", str(weights[0]), "--out", str(tmp_path)])
    assert code == 0
    written = json.loads(next(tmp_path.glob("colorize_memory_cpu_*.json")).read_text())
    assert [s["frame"] for s in written["samples"]] == [1, 2]
    # The observed propagator saw the exemplar and frame 0 go into memory.
    assert written["samples"][0]["working_elements"] > 0
    assert written["summary"]["rss_end_mb"] > 0
    assert "112x112" in capsys.readouterr().out


def test_gpu_suite_smoke_runs_every_step_on_the_cpu(weights, tmp_path):
    suite = _load("gpu_suite")
    code = suite.main(["--smoke", "--weights", str(weights[0]), "--out", str(tmp_path)])
    assert code == 0
    written = json.loads(next(tmp_path.glob("gpu_suite_cpu-smoke_*.json")).read_text())
    steps = written["steps"]
    assert [name for name in steps] == ["table", "vram", "backoff", "golden"]
    assert all(step["status"] == "ok" for step in steps.values()), steps
    assert {row["precision"] for row in steps["table"]["rows"]} == {"fp32", "bf16"}
    assert steps["vram"]["at_short_mib"] > 0 and steps["vram"]["at_long_mib"] > 0
    # The injected out-of-memory error was met and backed off from, and the video finished.
    assert steps["backoff"]["frames"] == 3
    assert steps["backoff"]["events"][-1].endswith("retrying with 1")
    assert steps["golden"]["bf16"][0]["min_db"] > 30
    assert "GPU suite on cpu (smoke)" in next(tmp_path.glob("gpu_suite_*.md")).read_text()


def test_precision_benchmark_compares_bf16_with_fp32(weights, tmp_path):
    bench = _load("bench_precision")
    code = bench.main(["--size", "64", "--frames", "2", "--threads", "1", "--weights",
                       str(weights[0]), "--out", str(tmp_path)])
    assert code == 0
    written = json.loads(next(tmp_path.glob("precision_cpu_*.json")).read_text())
    rows = {row["precision"]: row for row in written["results"]}
    assert set(rows) == {"fp32", "bf16"} and all(row["s_per_frame"] > 0 for row in rows.values())
    assert 20 < rows["bf16"]["psnr_vs_fp32_min_db"] < 200
