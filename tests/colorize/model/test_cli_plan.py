"""``colorize --plan`` prints the plan without loading the model or writing anything."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli


def test_plan_prints_and_writes_nothing(tmp_path, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        Image.fromarray(np.full((90, 130), 40 * index, np.uint8)).save(frames / f"{index:03d}.png")
    reference = tmp_path / "ref.png"
    Image.fromarray(np.zeros((90, 130, 3), np.uint8)).save(reference)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not read by --plan")

    def no_model(*args, **kwargs):
        raise AssertionError("--plan must not build the model")

    monkeypatch.setattr("colorize.engine.build_colorizer", no_model)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [str(frames), "--ref", str(reference), "-o", str(out),
                                      "--weights", str(weights), "--device", "cpu",
                                      "--max-side", "64", "--plan"])
    assert result.exit_code == 0, result.output
    assert "processing size:  64x44" in result.output
    assert "(3 frames)" in result.output
    assert "key-encode chunk:" in result.output and "estimated time:" in result.output
    assert not out.exists()
