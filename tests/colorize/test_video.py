"""End-to-end video I/O through ``colorize`` with a fake colorizer, checked on decoded pixels."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from colorize.video.source import open_source

from video_helpers import (
    audio_packets,
    gray_frames,
    identity,
    invoke,
    leftovers,
    read_video,
    tint,
    write_video,
)

# H.264 at CRF 18 on flat frames: decoded values stay within a few levels.
TOLERANCE = 6


def expected_tint(level: int, reference_rgb: tuple[int, int, int]) -> np.ndarray:
    frame = np.full((2, 2, 3), level, np.uint8)
    ref = np.full((2, 2, 3), reference_rgb, np.uint8)
    return tint(frame, ref)[0, 0].astype(int)


def test_mp4_keeps_frame_count_order_and_colours(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(12))
    out = tmp_path / "out.mp4"

    result = invoke([source, "--ref", red_reference, "-o", out])

    assert result.stdout.strip() == str(out)
    decoded = read_video(out)
    assert len(decoded.frames) == 12
    for index, frame in enumerate(decoded.frames):
        expected = expected_tint(10 + 20 * index, (200, 60, 40))
        assert np.abs(frame.reshape(-1, 3).mean(axis=0) - expected).max() < TOLERANCE, index
    assert leftovers(tmp_path) == []


def test_colorizer_gets_rgb_frames_and_reference_at_frame_size(
    tmp_path, fake_colorizer, red_reference
):
    source = write_video(tmp_path / "clip.mp4", gray_frames(3))
    invoke([source, "--ref", red_reference, "-o", tmp_path / "out.mp4"])

    assert fake_colorizer.seen_shapes == [(48, 64, 3)] * 3
    assert fake_colorizer.reference is not None
    assert fake_colorizer.reference.shape == (48, 64, 3)
    assert fake_colorizer.reference.dtype == np.uint8
    # The 32x24 solid reference stays solid when stretched to 64x48.
    assert np.abs(fake_colorizer.reference.astype(int) - (200, 60, 40)).max() <= 1


def test_odd_frame_size_is_kept(tmp_path, fake_colorizer, red_reference):
    frames = gray_frames(5, width=33, height=25)
    source = write_video(tmp_path / "odd.mkv", frames, codec="libx264", pix_fmt="yuv444p")

    out = tmp_path / "odd_out.mp4"
    invoke([source, "--ref", red_reference, "-o", out])

    decoded = read_video(out)
    assert len(decoded.frames) == 5
    assert decoded.frames[0].shape == (25, 33, 3)


def test_variable_frame_rate_timestamps_are_kept(tmp_path, fake_colorizer, red_reference):
    times_ms = [0, 33, 100, 133, 250, 260, 400, 566, 600, 1000]
    source = write_video(
        tmp_path / "vfr.mp4",
        gray_frames(len(times_ms)),
        pts=times_ms,
        time_base=Fraction(1, 1000),
    )
    out = tmp_path / "vfr_out.mp4"
    invoke([source, "--ref", red_reference, "-o", out])

    input_times = read_video(source).times
    output_times = read_video(out).times
    assert input_times == pytest.approx([t / 1000 for t in times_ms], abs=1e-3)
    assert output_times == pytest.approx(input_times, abs=1e-3)


def test_rotation_is_kept_and_colorizer_sees_upright_frames(
    tmp_path, fake_colorizer, red_reference
):
    frames = gray_frames(4)
    for frame in frames:
        frame[:8, :8] = 255  # a white marker in the stored top-left corner
    source = write_video(tmp_path / "phone.mp4", frames, rotation=-90)
    fake_colorizer.transform = identity

    out = tmp_path / "phone_out.mp4"
    invoke([source, "--ref", red_reference, "-o", out])

    decoded = read_video(out)
    assert decoded.rotations == [-90] * 4
    assert decoded.frames[0].shape == (48, 64, 3)  # stored orientation, as the input
    assert np.abs(decoded.frames[0][:8, :8].astype(int) - 255).max() < TOLERANCE
    # The model saw the picture upright: -90 (clockwise) moves top-left to top-right.
    assert fake_colorizer.seen_shapes[0] == (64, 48, 3)
    assert fake_colorizer.seen_frames[0][:8, -8:].min() == 255
    assert fake_colorizer.reference.shape == (64, 48, 3)


def test_audio_packets_are_copied_unchanged(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "talk.mp4", gray_frames(24), audio_codec="aac")
    for suffix in (".mp4", ".mkv", ".mov"):
        out = tmp_path / f"talk_out{suffix}"
        invoke([source, "--ref", red_reference, "-o", out])
        assert read_video(out).audio_codecs == ["aac"]
        assert audio_packets(out) == audio_packets(source), suffix


def test_audio_is_reencoded_when_the_container_refuses_it(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "talk.mkv", gray_frames(12), audio_codec="libopus")
    out = tmp_path / "talk_out.mov"

    result = invoke([source, "--ref", red_reference, "-o", out])

    assert "re-encoding it to AAC" in result.stderr
    assert read_video(out).audio_codecs == ["aac"]
    with av.open(str(out)) as container:
        decoded_audio = sum(f.samples for f in container.decode(audio=0))
    assert decoded_audio >= 48000 * 0.9  # about one second of sound survived


def test_webm_output_uses_vp9_and_opus(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "talk.mp4", gray_frames(6), audio_codec="aac")
    out = tmp_path / "talk_out.webm"
    invoke([source, "--ref", red_reference, "-o", out])

    decoded = read_video(out)
    assert decoded.codec == "vp9"
    assert decoded.audio_codecs == ["opus"]
    assert len(decoded.frames) == 6


def test_output_is_tagged_and_converted_as_bt709(tmp_path, fake_colorizer, red_reference):
    colour = (200, 60, 30)
    frames = [np.full((48, 64, 3), colour, np.uint8) for _ in range(3)]
    source = write_video(tmp_path / "red.mp4", frames)
    fake_colorizer.transform = identity

    out = tmp_path / "red_out.mp4"
    invoke([source, "--ref", red_reference, "-o", out])

    decoded = read_video(out)
    assert decoded.color_tags == (1, 1, 1, 1)  # BT.709 primaries, transfer, matrix; limited
    mean = decoded.frames[1].reshape(-1, 3).mean(axis=0)
    # With a BT.601 conversion into a BT.709-tagged stream this red would come back ~(210, 71, 26).
    assert np.abs(mean - colour).max() < 4


def test_image_folder_to_png_folder_keeps_names_and_exact_pixels(tmp_path, fake_colorizer):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    rng = np.random.default_rng(0)
    grays = [rng.integers(0, 256, (24, 32), dtype=np.uint8) for _ in range(4)]
    for index, gray in enumerate(grays):
        Image.fromarray(gray).save(frames_dir / f"{index:05d}.png")  # mode L
    reference = tmp_path / "ref.png"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(reference)
    fake_colorizer.transform = identity

    out = tmp_path / "out_frames"
    invoke([frames_dir, "--ref", reference, "-o", out])

    assert sorted(p.name for p in out.iterdir()) == [f"{i:05d}.png" for i in range(4)]
    for index, gray in enumerate(grays):
        # The colorizer got gray expanded to RGB exactly as Pillow's convert("RGB") does.
        assert np.array_equal(fake_colorizer.seen_frames[index], np.repeat(gray[..., None], 3, 2))
        written = np.asarray(Image.open(out / f"{index:05d}.png"))
        assert written.shape == (24, 32, 3)
        assert np.array_equal(written, np.repeat(gray[..., None], 3, axis=2))
    assert leftovers(tmp_path) == []


def test_image_folder_is_read_in_natural_order(tmp_path, fake_colorizer, red_reference):
    frames_dir = tmp_path / "seq"
    frames_dir.mkdir()
    for number in (1, 2, 10, 11, 3):
        Image.new("L", (16, 16), number * 10).save(frames_dir / f"frame_{number}.png")
    (frames_dir / "notes.txt").write_text("not a frame")

    out = tmp_path / "seq_out/"
    invoke([frames_dir, "--ref", red_reference, "-o", str(out) + "/"])

    levels = [int(f[0, 0, 0]) for f in fake_colorizer.seen_frames]
    assert levels == [10, 20, 30, 100, 110]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"frame_{n}.png" for n in (1, 2, 3, 10, 11)
    )


def test_image_folder_to_video_uses_fps(tmp_path, fake_colorizer, red_reference):
    frames_dir = tmp_path / "seq"
    frames_dir.mkdir()
    for index in range(5):
        Image.new("RGB", (32, 24), (index * 40,) * 3).save(frames_dir / f"{index}.png")
    out = tmp_path / "seq.mp4"
    invoke([frames_dir, "--ref", red_reference, "-o", out, "--fps", "10"])
    assert read_video(out).times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-3)


def test_video_to_png_folder_numbers_frames(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(3))
    out = tmp_path / "pngs"
    invoke([source, "--ref", red_reference, "-o", out])
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png"]


def test_rotated_video_to_png_folder_writes_upright_frames(
    tmp_path, fake_colorizer, red_reference
):
    source = write_video(tmp_path / "phone.mp4", gray_frames(2), rotation=90)
    out = tmp_path / "pngs"
    invoke([source, "--ref", red_reference, "-o", out])
    assert Image.open(out / "000000.png").size == (48, 64)


def test_single_image_input_default_output(tmp_path, fake_colorizer, red_reference):
    image = tmp_path / "photo.png"
    Image.new("L", (40, 30), 128).save(image)

    result = invoke([image, "--ref", red_reference])

    out = tmp_path / "photo_colorized.png"
    assert result.stdout.strip() == str(out)
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (30, 40, 3)
    assert np.array_equal(pixels[0, 0], expected_tint(128, (200, 60, 40)))


def test_default_output_path_is_beside_the_input(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "holiday.mkv", gray_frames(2))
    result = invoke([source, "--ref", red_reference])
    out = tmp_path / "holiday_colorized.mkv"
    assert result.stdout.strip() == str(out)
    assert len(read_video(out).frames) == 2


def test_default_output_for_folder_input(tmp_path, fake_colorizer, red_reference):
    frames_dir = tmp_path / "shots"
    frames_dir.mkdir()
    Image.new("L", (16, 16), 50).save(frames_dir / "a.png")
    invoke([frames_dir, "--ref", red_reference])
    assert (tmp_path / "shots_colorized" / "a.png").is_file()


def test_existing_output_needs_overwrite(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")

    result = invoke([source, "--ref", red_reference, "-o", out], exit_code=15)
    assert "--overwrite" in result.stderr
    assert out.read_bytes() == b"precious"

    invoke([source, "--ref", red_reference, "-o", out, "--overwrite"])
    assert len(read_video(out).frames) == 2
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_a_frames_folder(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / "pngs"
    out.mkdir()
    (out / "old.png").write_bytes(b"stale frame")

    invoke([source, "--ref", red_reference, "-o", out], exit_code=15)
    invoke([source, "--ref", red_reference, "-o", out, "--overwrite"])

    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png"]
    assert leftovers(tmp_path) == []


def test_overwrite_never_replaces_a_folder_with_other_files(
    tmp_path, fake_colorizer, red_reference
):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"keep me")

    invoke([source, "--ref", red_reference, "-o", out, "--overwrite"], exit_code=15)
    assert (out / "thesis.docx").read_bytes() == b"keep me"


def test_source_reports_frame_count_and_rate(tmp_path):
    source = write_video(tmp_path / "clip.mp4", gray_frames(7), fps=30)
    with open_source(source) as opened:
        assert opened.info.frame_count == 7
        assert not opened.info.frame_count_is_estimate
        assert opened.info.average_rate == 30
        assert [f.meta.index for f in opened.frames()] == list(range(7))



def _with_subtitles(path: Path, tmp_path: Path) -> Path:
    srt = tmp_path / "lines.srt"
    srt.write_text(
        "1\n00:00:00,000 --> 00:00:00,200\nHello\n\n"
        "2\n00:00:00,250 --> 00:00:00,400\nWorld\n"
    )
    with av.open(str(srt)) as subs, av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, 24)
        text = container.add_stream_from_template(subs.streams.subtitles[0])
        for packet in subs.demux(subs.streams.subtitles[0]):
            if packet.size:
                packet.stream = text
                container.mux(packet)
        for rgb in gray_frames(12):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = None, video.codec_context.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def _subtitle_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.subtitles:
            return []
        return [bytes(p) for p in container.demux(container.streams.subtitles[0]) if p.size]


def test_subtitles_are_copied_where_the_container_allows(tmp_path, fake_colorizer, red_reference):
    source = _with_subtitles(tmp_path / "film.mkv", tmp_path)
    assert _subtitle_payloads(source) == [b"Hello", b"World"]

    invoke([source, "--ref", red_reference, "-o", tmp_path / "film_out.mkv"])
    assert _subtitle_payloads(tmp_path / "film_out.mkv") == [b"Hello", b"World"]

    result = invoke([source, "--ref", red_reference, "-o", tmp_path / "film_out.mp4"])
    assert "dropped" in result.stderr  # SubRip cannot go into MP4: said, not silent
    assert _subtitle_payloads(tmp_path / "film_out.mp4") == []
    assert len(read_video(tmp_path / "film_out.mp4").frames) == 12


def test_pixel_aspect_ratio_is_kept(tmp_path, fake_colorizer, red_reference):
    source = tmp_path / "anamorphic.mp4"
    with av.open(str(source), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, 24)
        video.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for index, rgb in enumerate(gray_frames(3)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = index, video.codec_context.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    out = tmp_path / "anamorphic_out.mkv"
    invoke([source, "--ref", red_reference, "-o", out])
    with av.open(str(out)) as container:
        assert container.streams.video[0].sample_aspect_ratio == Fraction(4, 3)


def test_animated_gif_input_keeps_its_frame_delays(tmp_path, fake_colorizer, red_reference):
    images = [Image.new("L", (32, 24), level) for level in (20, 120, 220)]
    gif = tmp_path / "anim.gif"
    images[0].save(gif, save_all=True, append_images=images[1:], duration=[100, 300, 200], loop=0)
    out = tmp_path / "anim.mp4"
    invoke([gif, "--ref", red_reference, "-o", out])
    decoded = read_video(out)
    assert decoded.times == pytest.approx([0.0, 0.1, 0.4], abs=1e-3)
    levels = [int(np.asarray(f).mean()) for f in fake_colorizer.seen_frames]
    assert levels == [20, 120, 220]


def test_raw_h264_without_timestamps(tmp_path, fake_colorizer, red_reference):
    raw = tmp_path / "camera.h264"
    with av.open(str(raw), "w", format="h264") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for index, rgb in enumerate(gray_frames(6)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    out = tmp_path / "camera.mp4"
    invoke([raw, "--ref", red_reference, "-o", out])
    # No pts in the input: frames are timed from the stream's own 24 fps, not FFmpeg's 25 guess.
    assert read_video(out).times == pytest.approx([i / 24 for i in range(6)], abs=1e-3)


def test_names_with_a_colon_are_files_not_urls(
    tmp_path, fake_colorizer, red_reference, monkeypatch
):
    write_video(tmp_path / "12:30 take.mp4", gray_frames(2))
    monkeypatch.chdir(tmp_path)
    invoke(["12:30 take.mp4", "--ref", red_reference])
    assert len(read_video(tmp_path / "12:30 take_colorized.mp4").frames) == 2
