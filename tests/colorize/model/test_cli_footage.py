"""colorize with --ref-dir, --shots FILE and --report end to end on the real engine (synthetic
weights, a 6-frame 112x112 clip)."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli

from test_engine_state import reference, video


def test_keyframes_shots_and_report_end_to_end(tmp_path, synthetic_weights_file):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(video(6)):
        Image.fromarray(frame).save(frames / f"{index:03d}.png")
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.fromarray(reference(0)).save(refs / "ref_000000.png")
    Image.fromarray(reference(5)).save(refs / "ref_2.png")
    (refs / "notes.txt").write_text("skipped")
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("3\n")
    out, report = tmp_path / "out", tmp_path / "report.json"
    result = CliRunner().invoke(cli, [
        str(frames), "--ref-dir", str(refs), "--shots", str(cuts), "--report", str(report),
        "-o", str(out), "--weights", str(synthetic_weights_file), "--device", "cpu", "--fp32",
        "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 6
    data = json.loads(report.read_text())
    records = data["frames"]
    assert [r["frame"] for r in records] == list(range(6))
    assert [r["shot"] for r in records] == [0, 0, 0, 1, 1, 1]
    # Frames 0-1 use the main reference, frame 2 adds the keyframe, and the shot starting at 3
    # starts from it (the latest reference at or before the cut).
    assert [r["reference"].endswith("ref_2.png") for r in records] == [False, False] + [True] * 4
    assert all(0.0 <= r["score"] <= 1.0 for r in records)
    assert [p.name for p in tmp_path.glob("report.*") if p.suffix != ".json"]  # plot beside it
    assert np.asarray(Image.open(next(out.glob("*.png")))).shape == (112, 112, 3)
