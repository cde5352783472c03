"""Bad long-footage options on the command line: one line, its exit code, nothing written,
inputs untouched. And --plan prints shots with the reference each one starts from."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))

from video_helpers import gray_frames, invoke  # noqa: E402

FRAMES = 6


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A folder of 6 PNG frames: its frame count is exact."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(gray_frames(FRAMES)):
        Image.fromarray(frame).save(folder / f"{index:04d}.png")
    return folder


def snapshot(*paths: Path) -> dict[str, str]:
    files = [p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*")))]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def refuse(args: list, exit_code: int, *watched: Path) -> str:
    before = snapshot(*watched)
    result = invoke(args, exit_code=exit_code)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert snapshot(*watched) == before          # inputs untouched
    return lines[0]


def test_reference_frame_beyond_the_end(tmp_path, clip, red_reference, fake_colorizer):
    out = tmp_path / "out.mp4"
    line = refuse([clip, "--ref", red_reference, "--ref", f"{FRAMES}={red_reference}", "-o", out],
                  14, clip, red_reference)
    assert f"frame {FRAMES}" in line and "beyond the end" in line
    assert not out.exists() and not fake_colorizer.configs


def test_two_references_for_one_frame(tmp_path, clip, red_reference, fake_colorizer):
    out = tmp_path / "out.mp4"
    line = refuse([clip, "--ref", red_reference, "--ref", f"0={red_reference}", "-o", out],
                  14, clip, red_reference)
    assert "two references for frame 0" in line
    assert not out.exists()


def test_unreadable_file_in_ref_dir(tmp_path, clip, red_reference, fake_colorizer):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "ref_000000.png").write_bytes(red_reference.read_bytes())
    (refs / "ref_000003.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    line = refuse([clip, "--ref-dir", refs, "-o", out], 14, clip, refs)
    assert "ref_000003.png" in line
    assert not out.exists()


@pytest.mark.parametrize("content, expected", [("4\n2\n", "increasing order"),
                                               ("3\n60\n", "past the last frame")])
def test_bad_shots_file(tmp_path, clip, red_reference, fake_colorizer, content, expected):
    shots = tmp_path / "cuts.txt"
    shots.write_text(content)
    out = tmp_path / "out.mp4"
    line = refuse([clip, "--ref", red_reference, "--shots", shots, "-o", out], 8,
                  clip, red_reference, shots)
    assert expected in line
    assert not out.exists()


def test_plan_prints_shots_and_their_references(tmp_path, clip, red_reference, fake_colorizer):
    key = tmp_path / "key.png"
    Image.fromarray(np.full((48, 64, 3), (20, 90, 200), np.uint8)).save(key)
    shots = tmp_path / "cuts.txt"
    shots.write_text("# cuts\n2\n4\n")
    result = invoke([clip, "--ref", red_reference, "--ref", f"3={key}", "--shots", shots, "--plan",
                     "--device", "cpu"])
    text = result.stdout
    assert f"shot    0: frames 0-1, reference {red_reference} (frame 0)" in text
    assert f"shot    1: frames 2-3, reference {red_reference} (frame 0), then keyframes 3" in text
    assert f"shot    2: frames 4-5, reference {key} (frame 3)" in text
    assert not (tmp_path / "frames_colorized.mp4").exists()
