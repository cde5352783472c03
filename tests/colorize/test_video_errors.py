"""Every user error gets its exit code, a one-line message, no traceback, and no output left."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from colorize import errors
from colorize.video.source import open_source

from video_helpers import gray_frames, invoke, leftovers, write_video


def assert_clean_failure(result, out: Path, folder: Path) -> None:
    """One 'error:' line on stderr, no traceback, nothing at (or beside) the output path."""
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert leftovers(folder) == []


def test_missing_input(tmp_path, fake_colorizer, red_reference):
    out = tmp_path / "out.mp4"
    result = invoke([tmp_path / "nope.mp4", "--ref", red_reference, "-o", out], exit_code=10)
    assert "input not found" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_input_that_is_not_a_video(tmp_path, fake_colorizer, red_reference):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(1).bytes(4096))
    out = tmp_path / "out.mp4"
    result = invoke([junk, "--ref", red_reference, "-o", out], exit_code=10)
    assert "junk.mp4" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_input_without_video_stream(tmp_path, fake_colorizer, red_reference):
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
        )
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    result = invoke([sound, "--ref", red_reference, "-o", out], exit_code=11)
    assert "no video stream" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_folder_without_images(tmp_path, fake_colorizer, red_reference):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    out = tmp_path / "out"
    result = invoke([empty, "--ref", red_reference, "-o", out], exit_code=11)
    assert_clean_failure(result, out, tmp_path)


def test_truncated_video_says_how_many_frames_decoded(tmp_path, fake_colorizer, red_reference):
    rng = np.random.default_rng(2)
    noisy = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(30)]
    whole = write_video(tmp_path / "whole.mp4", noisy)
    truncated = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    # Keep the header (moov at the end is lost, so move it first: rewrite with faststart).
    with av.open(str(whole)) as src, av.open(
        str(truncated), "w", options={"movflags": "faststart"}
    ) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = stream
                dst.mux(packet)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.5)])
    out = tmp_path / "out.mp4"

    result = invoke([truncated, "--ref", red_reference, "-o", out], exit_code=12)

    assert "decoded" in result.stderr
    assert_clean_failure(result, out, tmp_path)
    assert truncated.read_bytes() == data[: int(len(data) * 0.5)]  # input untouched


def test_corrupt_frame_in_image_folder(tmp_path, fake_colorizer, red_reference):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    rng = np.random.default_rng(3)
    for index in range(3):
        noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)  # big enough to cut mid-data
        Image.fromarray(noise).save(frames_dir / f"{index}.png")
    good = (frames_dir / "1.png").read_bytes()
    (frames_dir / "1.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    out = tmp_path / "out"

    result = invoke([frames_dir, "--ref", red_reference, "-o", out], exit_code=12)

    assert "1.png" in result.stderr and "frames decoded" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_frame_that_breaks_during_decoding_reports_the_count(tmp_path):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    rng = np.random.default_rng(4)
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(
            frames_dir / f"{index}.png"
        )
    with open_source(frames_dir) as source:
        damaged = frames_dir / "2.png"
        damaged.write_bytes(damaged.read_bytes()[:200])  # changed after the up-front check
        with pytest.raises(errors.CorruptInputError) as caught:
            list(source.frames())
    assert caught.value.frames_decoded == 2
    assert "2 frames decoded" in str(caught.value)


def test_mixed_image_sizes(tmp_path, fake_colorizer, red_reference):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    Image.new("L", (16, 16)).save(frames_dir / "0.png")
    Image.new("L", (20, 16)).save(frames_dir / "1.png")
    out = tmp_path / "out"
    result = invoke([frames_dir, "--ref", red_reference, "-o", out], exit_code=13)
    assert "differ in size" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_frame_size_change_mid_stream(tmp_path):
    small = write_video(tmp_path / "a.ts", gray_frames(3), codec="mpeg2video")
    big = write_video(tmp_path / "b.ts", gray_frames(3, width=80, height=64), codec="mpeg2video")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(small.read_bytes() + big.read_bytes())  # TS concatenates by bytes
    with open_source(joined) as source:
        with pytest.raises(errors.UnsupportedInputError, match="frame size changes"):
            list(source.frames())


@pytest.mark.parametrize("content", [None, b"this is not an image"])
def test_unreadable_reference(tmp_path, fake_colorizer, content):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    reference = tmp_path / "ref.png"
    if content is not None:
        reference.write_bytes(content)
    out = tmp_path / "out.mp4"
    result = invoke([source, "--ref", reference, "-o", out], exit_code=14)
    assert "reference" in result.stderr
    assert_clean_failure(result, out, tmp_path)


@pytest.mark.parametrize("name", ["out.avi", "out.gif"])
def test_unsupported_output_extension(tmp_path, fake_colorizer, red_reference, name):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / name
    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=16)
    assert ".mp4" in result.stderr  # says what would work
    assert_clean_failure(result, out, tmp_path)


def test_single_image_output_for_a_clip_is_refused(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / "frame.png"
    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=16)
    assert_clean_failure(result, out, tmp_path)


def test_output_may_not_be_the_input(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    before = source.read_bytes()
    invoke([source, "--ref", red_reference, "-o", source, "--overwrite"], exit_code=16)
    assert source.read_bytes() == before


def test_output_under_a_file_cannot_be_written(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker / "out.mp4"
    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=17)
    assert "cannot write" in result.stderr
    assert blocker.read_text() == "a file, not a folder"


def test_no_colorizer_available_is_reported_cleanly(tmp_path, monkeypatch, red_reference):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(weights))
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / "out.mp4"
    # The real engine (no fake_colorizer fixture): until the model lands it refuses.
    from colorize import engine

    def unavailable(config):
        raise errors.ColorizerUnavailableError("no colorizer is available yet")

    monkeypatch.setattr(engine, "build_colorizer", unavailable)
    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=9)
    assert "no colorizer is available" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_missing_weights_file(tmp_path, monkeypatch, red_reference):
    monkeypatch.delenv("COLORIZE_WEIGHTS", raising=False)
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / "out.mp4"
    result = invoke(
        [source, "--ref", red_reference, "-o", out, "--weights", tmp_path / "missing.pt"],
        exit_code=25,
    )
    assert "missing.pt, which does not exist" in result.stderr
    assert_clean_failure(result, out, tmp_path)


@pytest.mark.parametrize("suffix", [".mp4", ""])
def test_failure_mid_run_leaves_nothing(tmp_path, fake_colorizer, red_reference, suffix):
    source = write_video(tmp_path / "clip.mp4", gray_frames(8))
    fake_colorizer.fail_after = 4
    fake_colorizer.failure = errors.ColorizeError("simulated failure after 4 frames")
    out = tmp_path / f"out{suffix}"
    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=1)
    assert "simulated failure" in result.stderr
    assert_clean_failure(result, out, tmp_path)


def test_interrupt_leaves_nothing_and_exits_130(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(8))
    fake_colorizer.fail_after = 3
    fake_colorizer.failure = KeyboardInterrupt()
    out = tmp_path / "out.mp4"
    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=130)
    assert "interrupted" in result.stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_overwrite_failure_keeps_the_old_output(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(8))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    fake_colorizer.fail_after = 2
    fake_colorizer.failure = errors.ColorizeError("boom")
    invoke([source, "--ref", red_reference, "-o", out, "--overwrite"], exit_code=1)
    assert out.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == []


def test_verbose_shows_details_of_an_error(tmp_path, fake_colorizer, red_reference):
    out = tmp_path / "out.mp4"
    result = invoke(
        [tmp_path / "nope.mp4", "--ref", red_reference, "-o", out, "--verbose"], exit_code=10
    )
    assert "Traceback" in result.stderr
