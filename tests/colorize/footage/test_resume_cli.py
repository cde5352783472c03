"""Resume after a crash, end to end: ``python -m colorize`` killed with SIGKILL, then rerun.

Real engine on synthetic weights, 64x64 clips (padded to one 112x112 tile), CPU fp32, so the
resumed output must equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS / "colorize"))

from video_helpers import audio_packets, read_video, write_video  # noqa: E402

FRAMES = 16
EVERY = 3
EXIT_EXISTS, EXIT_UNUSABLE = 18, 19


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    import importlib.util

    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location("make_test_weights",
                                                  TESTS / "fixtures" / "make_test_weights.py")
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    entries = json.loads((TESTS.parent / "colorize" / "model" / "checkpoint_spec.json").read_text())
    path = tmp_path_factory.mktemp("weights") / "synthetic.safetensors"
    save_file({k: v.contiguous() for k, v in rule.build_state_dict(entries["entries"]).items()},
              str(path))
    return path


def make_clip(path: Path, seed: int = 0, count: int = FRAMES) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:64, 0:64]
    frames = []
    for t in range(count):
        gray = (x * 3 + y * 2 + 7 * t + rng.integers(0, 20, (64, 64))) % 256
        frames.append(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2))
    return write_video(path, frames, audio_codec="aac")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clip")
    y, x = np.mgrid[0:64, 0:64]
    reference = np.stack([x * 4, y * 4, 255 - x * 4], -1).astype(np.uint8)
    Image.fromarray(reference).save(root / "ref.png")
    return make_clip(root / "in.mp4"), root / "ref.png"


def command(clip: tuple[Path, Path], weights: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "colorize", str(clip[0]), "--ref", str(clip[1]), "-o", str(output),
            "--weights", str(weights), "--device", "cpu", "--fp32", "-q", *extra]


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run(args, capture_output=True, text=True, timeout=1200, env=env)


def run_and_kill(args: list[str], ready) -> None:
    """Start ``args`` and SIGKILL it as soon as ``ready()`` is true."""
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "2"})
    try:
        deadline = time.monotonic() + 1200
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"the run ended (exit {process.returncode}) before the kill point")
            if time.monotonic() > deadline:
                pytest.fail("the kill point was never reached")
            time.sleep(0.01)
        process.kill()      # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
    finally:
        process.wait()


def checkpoint_of(output: Path) -> Path:
    return output.with_name(output.name + ".colorize-resume")


def stored_frames(output: Path) -> int:
    folder = checkpoint_of(output) / "frames"
    return len(list(folder.glob("*.png"))) if folder.is_dir() else 0


def saved_position(output: Path) -> int:
    try:
        return json.loads((checkpoint_of(output) / "checkpoint.json").read_text())["next_frame"]
    except (OSError, ValueError, KeyError):
        return -1


def pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_three_times_then_resumed_gives_the_uninterrupted_frames(clip, weights, tmp_path):
    expected = tmp_path / "expected"
    assert run(command(clip, weights, expected, "--checkpoint-every", "0")).returncode == 0
    output = tmp_path / "frames"
    args = command(clip, weights, output, "--checkpoint-every", str(EVERY))
    kill_points = sorted(np.random.default_rng(12).choice(np.arange(2, FRAMES - 1), 3, replace=False))
    for point in kill_points:
        run_and_kill(args, lambda: stored_frames(output) >= point)
        assert not output.exists()  # nothing at the output path until the run completes
        assert checkpoint_of(output).is_dir()
    finished = run(args)  # the same command continues
    assert finished.returncode == 0, finished.stderr
    assert not checkpoint_of(output).exists()
    got, want = pixels(output), pixels(expected)
    assert list(got) == list(want) and len(got) == FRAMES
    for name in want:
        assert np.array_equal(got[name], want[name]), name


def test_killed_video_run_resumes_to_the_normal_paths_frames_times_and_audio(clip, weights, tmp_path):
    # --crf 0: lossless H.264, so equal decoded frames mean equal frames before encoding.
    expected = tmp_path / "expected.mp4"
    assert run(command(clip, weights, expected, "--crf", "0", "--checkpoint-every", "0")).returncode == 0
    output = tmp_path / "out.mp4"
    run_and_kill(command(clip, weights, output, "--crf", "0", "--checkpoint-every", str(EVERY)),
                 lambda: saved_position(output) >= 9)
    assert not output.exists()
    finished = run(command(clip, weights, output, "--crf", "0", "--resume"))
    assert finished.returncode == 0, finished.stderr
    assert not checkpoint_of(output).exists()
    got, want = read_video(output), read_video(expected)
    assert len(got.frames) == FRAMES
    assert got.times == want.times
    for a, b in zip(got.frames, want.frames):
        assert np.array_equal(a, b)
    assert audio_packets(output) == audio_packets(expected)


@pytest.fixture
def interrupted(clip, weights, tmp_path) -> Path:
    """A PNG-frame run killed after its second checkpoint; returns its output path."""
    output = tmp_path / "frames"
    run_and_kill(command(clip, weights, output, "--checkpoint-every", str(EVERY)),
                 lambda: saved_position(output) >= 2 * EVERY)
    return output


def test_refusals_leave_everything_as_it_was(clip, weights, interrupted, tmp_path):
    output = interrupted
    before = {p.name: digest(p) for p in clip}

    def refused(args: list[str], code: int, *needles: str) -> None:
        result = run(args)
        assert result.returncode == code, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        for needle in needles:
            assert needle in lines[0]
        assert not output.exists()
        assert {p.name: digest(p) for p in clip} == before

    # A plain rerun says a checkpoint exists and how to go on.
    refused(command(clip, weights, output), EXIT_EXISTS, "--resume", "delete")
    # A changed knob is named.
    refused(command(clip, weights, output, "--resume", "--top-k", "20"), EXIT_UNUSABLE,
            "--top-k 30 -> 20")
    # Another video with the same output.
    other = make_clip(tmp_path / "other.mp4", seed=5, count=FRAMES + 2)
    refused(command((other, clip[1]), weights, output, "--resume"), EXIT_UNUSABLE,
            "input is another file")
    # A damaged checkpoint: one byte of the engine state flipped.
    record = json.loads((checkpoint_of(output) / "checkpoint.json").read_text())
    state = checkpoint_of(output) / record["state_file"]
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0x40
    state.write_bytes(bytes(data))
    refused(command(clip, weights, output, "--resume"), EXIT_UNUSABLE, "damaged")
    # Garbage in the record.
    (checkpoint_of(output) / "checkpoint.json").write_text("{not json")
    refused(command(clip, weights, output, "--resume"), EXIT_UNUSABLE, "damaged")
    assert checkpoint_of(output).is_dir()  # never deleted behind the user's back


def test_report_of_a_resumed_run_covers_every_frame(clip, weights, tmp_path):
    """The records of frames done before the checkpoint travel in it: the resumed run's report
    equals an uninterrupted run's."""
    expected_report = tmp_path / "expected.json"
    assert run(command(clip, weights, tmp_path / "expected", "--checkpoint-every", "0",
                       "--report", str(expected_report))).returncode == 0
    output, report = tmp_path / "frames", tmp_path / "resumed.json"
    args = command(clip, weights, output, "--checkpoint-every", str(EVERY), "--report", str(report))
    run_and_kill(args, lambda: saved_position(output) >= 2 * EVERY)
    assert not report.exists()
    finished = run(args)
    assert finished.returncode == 0, finished.stderr
    got = json.loads(report.read_text())["frames"]
    want = json.loads(expected_report.read_text())["frames"]
    assert [r["frame"] for r in got] == list(range(FRAMES))
    assert got == want


GOP = 6
SHOT_FRAMES = 16      # the cut detector's minimum shot length is 15 frames


def two_shot_clip(path: Path) -> Path:
    """Two shots (a ramp, then its inverted mirror) with short GOPs and B-frames."""
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:64, 0:64]
    frames = []
    for t in range(2 * SHOT_FRAMES):
        gray = (x * 3 + y * 2 + 5 * t + rng.integers(0, 12, (64, 64))) % 200
        if t >= SHOT_FRAMES:
            gray = 255 - gray[:, ::-1]
        frames.append(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2))
    params = f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=2"
    return write_video(path, frames, options={"x264-params": params})


def test_killed_shots_auto_run_resumes_by_seeking_to_the_uninterrupted_frames(clip, weights,
                                                                              tmp_path):
    """--shots auto: the checkpoint keeps the cut detector's state and where to seek, so the
    resumed run decodes at most one GOP before its position and still gives the frames of an
    uninterrupted run (the cut found before the kill included)."""
    pytest.importorskip("scenedetect")
    video = two_shot_clip(tmp_path / "shots.mp4")
    inputs = (video, clip[1])
    expected = tmp_path / "expected"
    done = run(command(inputs, weights, expected, "--shots", "auto", "--checkpoint-every", "0"))
    assert done.returncode == 0, done.stderr
    output = tmp_path / "frames"
    args = command(inputs, weights, output, "--shots", "auto", "--checkpoint-every", "4")
    run_and_kill(args, lambda: saved_position(output) >= SHOT_FRAMES + 4)
    record = json.loads((checkpoint_of(output) / "checkpoint.json").read_text())
    position = record["next_frame"]
    assert record["engine_meta"]["cut_detector"]["cuts"] == [SHOT_FRAMES]
    assert record["engine_meta"]["seek"]["frame"] <= position
    resumed = run([*(a for a in args if a != "-q"), "--resume", "-v"])
    assert resumed.returncode == 0, resumed.stderr
    seeks = [line for line in resumed.stderr.splitlines() if "seeked to the keyframe" in line]
    assert len(seeks) == 1, resumed.stderr
    # "...: seeked to the keyframe at frame K for frame N (D frames decoded)"
    words = seeks[0].split()
    keyframe, target = int(words[words.index("frame") + 1]), int(words[words.index("for") + 2])
    decoded = int(seeks[0].rsplit("(", 1)[1].split()[0])
    assert target == position and position - keyframe < GOP
    assert decoded <= position - keyframe + 2     # the frame read at opening, then the GOP
    got, want = pixels(output), pixels(expected)
    assert list(got) == list(want) and len(got) == 2 * SHOT_FRAMES
    for name in want:
        assert np.array_equal(got[name], want[name]), name


def test_killed_video_run_with_short_gops_resumes_by_seeking(clip, weights, tmp_path):
    """Video output: the resumed run seeks to the keyframe before its position and still gives
    the uninterrupted run's frames and times (crf 0)."""
    video = two_shot_clip(tmp_path / "gops.mp4")
    inputs = (video, clip[1])
    expected = tmp_path / "expected.mp4"
    done = run(command(inputs, weights, expected, "--crf", "0", "--checkpoint-every", "0"))
    assert done.returncode == 0, done.stderr
    output = tmp_path / "out.mp4"
    args = command(inputs, weights, output, "--crf", "0", "--checkpoint-every", "5")
    run_and_kill(args, lambda: saved_position(output) >= 15)
    position = saved_position(output)
    resumed = run([*(a for a in args if a != "-q"), "--resume", "-v"])
    assert resumed.returncode == 0, resumed.stderr
    seeks = [line for line in resumed.stderr.splitlines() if "seeked to the keyframe" in line]
    assert len(seeks) == 1 and f"for frame {position} " in seeks[0], resumed.stderr
    got, want = read_video(output), read_video(expected)
    assert len(got.frames) == 2 * SHOT_FRAMES and got.times == want.times
    for a, b in zip(got.frames, want.frames):
        assert np.array_equal(a, b)
