"""Golden cases from the official implementation (synthetic weights, fp32 CPU), end to end.

Tolerances (tests/fixtures/golden/ORACLE.md): per case, ab max-abs <= 1e-3 and mean-abs <= 1e-4;
RGB uint8 mean-abs <= 0.05 and max-abs <= 2.
"""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from colorize.cli import cli
from colorize.engine import EngineConfig, build_colorizer


def test_engine_ab_matches_official(golden_case, synthetic_weights_file, record_property):
    case = golden_case
    colorizer = build_colorizer(EngineConfig(
        weights=synthetic_weights_file, device="cpu", precision="fp32",
        reference_is_first_frame=case.reference_is_first_frame))
    worst_max, total_abs, count = 0.0, 0.0, 0
    per_frame = {}
    predictions = colorizer.predict(case.frames(), case.reference())
    for name, (_, ab) in zip(case.frame_names, predictions, strict=True):
        difference = np.abs(ab.numpy() - case.expected_ab(name))
        per_frame[name] = float(difference.max())
        worst_max = max(worst_max, float(difference.max()))
        total_abs += float(difference.sum())
        count += difference.size
    record_property("ab_max_per_frame", per_frame)
    assert len(per_frame) == len(case.frame_names)
    assert worst_max <= 1e-3, per_frame
    assert total_abs / count <= 1e-4


def test_cli_png_frames_match_official(golden_case, synthetic_weights_file, tmp_path):
    case = golden_case
    out = tmp_path / "out"
    args = [str(case.root / "frames"), "--ref", str(case.root / "ref.png"), "-o", str(out),
            "--weights", str(synthetic_weights_file), "--device", "cpu", "--fp32", "--quiet"]
    if case.reference_is_first_frame:
        args.append("--ref-is-first-frame")
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == case.frame_names          # named like the input frames
    worst, total, count = 0, 0.0, 0
    for name in case.frame_names:
        ours = np.array(Image.open(out / name).convert("RGB")).astype(np.int32)
        expected = case.expected_rgb(name).astype(np.int32)
        assert ours.shape == expected.shape
        difference = np.abs(ours - expected)
        worst = max(worst, int(difference.max()))
        total += float(difference.sum())
        count += difference.size
    assert worst <= 2
    assert total / count <= 0.05
