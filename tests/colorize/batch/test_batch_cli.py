"""``colorize batch`` end to end: the real engine with synthetic weights, --dry-run, exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from click.testing import CliRunner

import batch_helpers as h
from colorize.cli import cli
from colorize.engine import resolve_precision


def invoke(*args) -> "object":
    return CliRunner().invoke(cli, ["batch", *map(str, args)], catch_exceptions=False)


def test_batch_runs_the_engine_once_per_worker(tmp_path, batch_weights):
    source = h.make_folder(tmp_path / "in", videos=2, frames=3)
    outdir = tmp_path / "out"
    result = invoke(source, "-o", outdir, "--weights", batch_weights, "--device", "cpu",
                    "--workers", "1", "--crf", "0")
    assert result.exit_code == 0, result.output
    assert "2 done, 0 skipped (already done), 0 failed" in result.stdout
    assert "1 model load(s)" in result.stdout
    lines = h.lines(outdir)
    assert [line["status"] for line in lines] == ["ok", "ok"]
    auto = resolve_precision("auto", torch.device("cpu"))       # bf16 where the CPU has it
    assert all(line["device"].endswith(f"cpu {auto}") for line in lines)
    for line in lines:
        frames = h.decode(Path(line["output"]))
        assert len(frames) == 3 and frames[0].shape == (h.SIZE, h.SIZE, 3)
    assert "videos 2/2" in result.stderr          # progress over the whole batch
    again = invoke(source, "-o", outdir, "--weights", batch_weights, "--device", "cpu", "--crf", "0")
    assert again.exit_code == 0 and "0 done, 2 skipped" in again.stdout
    assert "0 model load(s)" in again.stdout


def test_dry_run_lists_videos_references_and_time_and_writes_nothing(tmp_path, batch_weights):
    source = h.make_folder(tmp_path / "in", videos=3, frames=4)
    (source / "clip_02.png").unlink()
    outdir = tmp_path / "out"
    result = invoke(source, "-o", outdir, "--dry-run", "--weights", batch_weights, "--device", "cpu")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "clip_00.mp4  [64x64, 4 frames" in text and "references: " + str(source / "clip_00.png") in text
    assert "fails: no reference found for clip_02.mp4" in text
    assert "videos: 3 (2 to run, 0 done already, 1 with problems), 8 frames to colorize" in text
    assert "estimated time:" in text
    assert not outdir.exists()


def test_bad_source_and_missing_ray_are_one_line_with_their_exit_code(tmp_path, monkeypatch):
    result = invoke(tmp_path / "nowhere", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "batch source not found" in result.stderr
    manifest = tmp_path / "list.txt"
    manifest.write_text("a.mp4\n")
    assert invoke(manifest, "-o", tmp_path / "out").exit_code == 1
    source = h.make_folder(tmp_path / "in", videos=1, frames=2)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "ray", None)         # as if the extra were not installed
    result = invoke(source, "-o", tmp_path / "out", "--ray", "local", "--weights", weights)
    assert result.exit_code == 6
    assert "pip install 'colorize-video[ray]'" in result.stderr
