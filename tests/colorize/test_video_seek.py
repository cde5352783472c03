"""Exact seeking (colorize/video/seek.py, Source.frames_from): every start frame gives the frames
a decode from the start gives, bit for bit, with the same numbers and timestamps, and the work to
reach it is bounded by the GOP, not by the frame's position.

Clips are generated here (64x48, 40-300 frames): H.264 with B-frames at constant and variable
frame rate (MP4 and Matroska), an open GOP, GOPs of 12 and 250, VP9 and intra-only MJPEG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from colorize.video import seek
from colorize.video.seek import AnchorTracker, FrameIndex, NotSeekableError, SeekAnchor
from colorize.video.source import open_source


@dataclass(frozen=True)
class Clip:
    name: str
    codec: str
    frames: int
    gop: int
    options: dict
    vfr: bool = False
    pix_fmt: str = "yuv420p"
    starts: tuple[int, ...] | None = None     # None: every frame
    format: str | None = None
    late_landing_gops: int = 0                # a seek without an index may land late and go again


X264 = "scenecut=0:bframes=3:b-adapt=0:keyint={gop}:min-keyint={gop}"
CLIPS = [
    Clip("h264_cfr.mp4", "libx264", 40, 12, {"x264-params": X264}),
    Clip("h264_cfr.mov", "libx264", 40, 12, {"x264-params": X264}),
    Clip("h264_vfr.mp4", "libx264", 40, 12, {"x264-params": X264}, vfr=True),
    Clip("h264_vfr.mkv", "libx264", 40, 12, {"x264-params": X264}, vfr=True),
    Clip("h264_open_gop.mp4", "libx264", 40, 12, {"x264-params": X264 + ":open-gop=1"}),
    Clip("h264_gop250.mp4", "libx264", 300, 250, {"x264-params": X264},
         starts=(0, 1, 100, 249, 250, 251, 260, 299)),
    Clip("vp9.webm", "libvpx-vp9", 40, 12, {"deadline": "realtime", "cpu-used": "8", "g": "12"}),
    Clip("mjpeg.mkv", "mjpeg", 30, 1, {}, pix_fmt="yuvj420p"),
    # No index: the seek may land after the keyframe, and is made again a little earlier.
    Clip("h264.ts", "libx264", 40, 12, {"x264-params": X264}, format="mpegts",
         late_landing_gops=1),
]
VFR_STEPS = (33, 41, 66, 20)   # milliseconds between frames, repeating


def write_clip(folder: Path, clip: Clip) -> Path:
    path = folder / clip.name
    options = {key: value.format(gop=clip.gop) for key, value in clip.options.items()}
    rng = np.random.default_rng(3)
    x = np.arange(64)[None, :, None]
    with av.open(str(path), "w", format=clip.format) as container:
        stream = container.add_stream(clip.codec, rate=24, options=options)
        stream.width, stream.height, stream.pix_fmt = 64, 48, clip.pix_fmt
        time_base = Fraction(1, 1000) if clip.vfr else Fraction(1, 24)
        stream.codec_context.time_base = time_base
        pts = 0
        for index in range(clip.frames):
            rgb = ((x * 3 + index * 9 + rng.integers(0, 40, (48, 64, 3))) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=clip.pix_fmt)
            frame.pts, frame.time_base = (pts if clip.vfr else index), time_base
            pts += VFR_STEPS[index % len(VFR_STEPS)]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_all(path: Path) -> list[tuple[int, int | None, np.ndarray]]:
    with open_source(path) as source:
        return [(f.meta.index, f.meta.pts, f.rgb) for f in source.frames()]


def assert_same(got, want) -> None:
    assert [(i, p) for i, p, _ in got] == [(i, p) for i, p, _ in want]
    for (index, _, a), (_, _, b) in zip(got, want):
        assert np.array_equal(a, b), f"frame {index} differs"


def frames_from(path: Path, start: int, anchor: SeekAnchor | None = None):
    """(frames from ``start``, frames decoded when ``start`` came out)."""
    with open_source(path) as source:
        frames = source.frames_from(start, anchor)
        first = next(frames)
        decoded = source.decoded_frames
        rest = [(f.meta.index, f.meta.pts, f.rgb) for f in frames]
        return [(first.meta.index, first.meta.pts, first.rgb)] + rest, decoded


@pytest.mark.parametrize("clip", CLIPS, ids=[c.name for c in CLIPS])
def test_every_start_gives_the_frames_of_a_decode_from_the_start(clip, tmp_path, caplog):
    path = write_clip(tmp_path, clip)
    want = decode_all(path)
    assert len(want) == clip.frames
    caplog.set_level(logging.WARNING, logger="colorize")
    for start in clip.starts or range(clip.frames):
        got, decoded = frames_from(path, start)
        assert_same(got, want[start:])
        # The frame decoded when the file is opened, then the keyframe's GOP up to the start.
        gop_start = start - start % clip.gop
        assert decoded <= (start - gop_start) + clip.late_landing_gops * (clip.gop + 4) + 2, \
            (start, decoded)
    # No fallback notice (FFmpeg's own lines about an open GOP's leading pictures aside).
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("colorize")]
    assert not ours, ours


def test_the_index_names_the_keyframes_as_seek_points(tmp_path):
    clip = CLIPS[3]   # open GOP: leading pictures after each keyframe
    with open_source(write_clip(tmp_path, clip)) as source:
        index = source.frame_index()
    assert index is not None and index.frame_count == clip.frames
    assert index.seek_points == (0, 12, 24, 36)
    anchor = index.anchor_for(30)
    assert anchor.frame == 24 and anchor.pts == index.pts[24:31]


def test_a_keyframe_that_an_earlier_packet_is_shown_after_is_no_seek_point():
    # Decode order: key 0, then 3 (shown after the keyframe at 2), key 2, 1... -> 2 is unsafe.
    index = seek.index_from_packets([(0, True), (3, False), (2, True), (1, False), (4, True)])
    assert index.pts == (0, 1, 2, 3, 4)
    assert index.seek_points == (0, 4)
    with pytest.raises(NotSeekableError, match="no timestamp"):
        seek.index_from_packets([(None, True), (1, False)])
    with pytest.raises(NotSeekableError, match="same timestamp"):
        seek.index_from_packets([(0, True), (0, False)])


def test_a_wrong_anchor_falls_back_to_the_start_exactly_and_says_so(tmp_path, caplog):
    path = write_clip(tmp_path, CLIPS[0])
    want = decode_all(path)
    # The keyframe right, the frame after it said to carry a timestamp it does not have.
    wrong = SeekAnchor(12, (want[12][1], want[13][1] + 1))
    caplog.set_level(logging.WARNING, logger="colorize")
    got, decoded = frames_from(path, 20, wrong)
    assert_same(got, want[20:])
    assert decoded > 20                       # decoded from the start, not from a keyframe
    [record] = [r for r in caplog.records if r.name.startswith("colorize")]
    assert "cannot seek exactly to frame 20" in record.getMessage()
    assert "decoding from the start" in record.getMessage()


def raw_h264(tmp_path: Path) -> Path:
    """The packets of an MP4 as a raw elementary stream: no timestamps at all."""
    mp4 = write_clip(tmp_path, CLIPS[0])
    raw = tmp_path / "raw.h264"
    with av.open(str(mp4)) as source, av.open(str(raw), "w", format="h264") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.size:
                packet.stream = stream
                target.mux(packet)
    return raw


def test_a_stream_without_timestamps_is_decoded_from_the_start_with_a_notice(tmp_path, caplog):
    raw = raw_h264(tmp_path)
    want = decode_all(raw)
    assert len(want) == 40 and want[5][1] is None       # a raw stream has no pts at all
    caplog.set_level(logging.WARNING, logger="colorize")
    got, _ = frames_from(raw, 30)
    assert_same(got, want[30:])
    assert any("cannot seek exactly to frame 30" in r.getMessage() for r in caplog.records)


def test_an_index_from_another_decoder_start_is_refused(tmp_path):
    path = write_clip(tmp_path, CLIPS[0])
    with open_source(path) as source:
        index = source.frame_index()
        shifted = FrameIndex(tuple(p + 1 for p in index.pts), index.seek_points)
        with pytest.raises(NotSeekableError, match="first decoded frame"):
            source.use_frame_index(shifted)


def test_anchors_from_decoded_frames_seek_without_a_scan(tmp_path, monkeypatch):
    """What a resume checkpoint keeps: the frames an interrupted run decoded give the anchor."""
    clip = CLIPS[1]   # VFR with B-frames
    path = write_clip(tmp_path, clip)
    tracker = AnchorTracker()
    with open_source(path) as source:
        frames = list(source.frames())
    for frame in frames[:35]:   # the decoder ahead of the checkpoint at 30
        tracker.observe(frame.meta.index, frame.meta.pts, frame.meta.keyframe)
    anchor = tracker.anchor_for(30)
    assert anchor is not None and anchor.frame == 24
    assert anchor.pts == tuple(f.meta.pts for f in frames[24:31])

    def no_scan(*args, **kwargs):
        raise AssertionError("the anchor should make a packet scan unnecessary")

    monkeypatch.setattr("colorize.video.source.scan_frame_index", no_scan)
    got, decoded = frames_from(path, 30, anchor)
    assert_same(got, [(f.meta.index, f.meta.pts, f.rgb) for f in frames[30:]])
    assert decoded <= 30 - 24 + 2


def test_frame_index_round_trip_and_from_decoded_frames(tmp_path):
    path = write_clip(tmp_path, CLIPS[4])
    with open_source(path) as source:
        scanned = source.frame_index()
        metas = [frame.meta for frame in source.frames()]
    assert FrameIndex.from_frames(metas) == scanned
    scanned.save(tmp_path / "index.json")
    assert FrameIndex.load(tmp_path / "index.json") == scanned


def test_image_folders_start_at_any_frame(tmp_path):
    from PIL import Image

    for index in range(5):
        Image.fromarray(np.full((8, 8, 3), index * 40, np.uint8)).save(tmp_path / f"f{index}.png")
    with open_source(tmp_path) as source:
        got = list(source.frames_from(3))
    assert [f.meta.index for f in got] == [3, 4]
    assert [int(f.rgb[0, 0, 0]) for f in got] == [120, 160]


def test_shot_tasks_seek_with_the_index_the_cuts_task_wrote(tmp_path, monkeypatch):
    """The batch's own frame source of a shot task: every shot starts at its frame, the frames
    are those of a decode from the start, and only the GOP before the shot is decoded."""
    from PIL import Image

    from colorize.batch import tasks
    from colorize.batch.plan import build_plan

    clip = CLIPS[0]
    folder = tmp_path / "in"
    folder.mkdir()
    path = write_clip(folder, clip)
    Image.new("RGB", (64, 48), (200, 90, 30)).save(folder / "h264_cfr.png")
    cuts = [7, 13, 25, 30]
    (tmp_path / "cuts.txt").write_text("".join(f"{cut}\n" for cut in cuts))
    [job] = build_plan(folder, tmp_path / "out", {"shots": str(tmp_path / "cuts.txt")}).jobs
    context = tasks.WorkerContext(tasks.WorkerSettings(weights="unused"))
    index_path = tmp_path / "frame-index.json"
    result = tasks.execute_task(context, tasks.Task("0:cuts", "cuts", job,
                                                    frame_index=str(index_path)))
    assert result.ok and result.cuts == cuts and index_path.is_file()

    def no_scan(*args, **kwargs):
        raise AssertionError("a shot task must use the cuts task's index, not scan the film")

    monkeypatch.setattr("colorize.video.source.scan_frame_index", no_scan)
    want = decode_all(path)
    starts = [0, *cuts]
    for start, end in zip(starts, [*cuts, clip.frames]):
        with tasks._open(job) as source:
            tasks._use_frame_index(source, str(index_path))
            got = [(f.meta.index, f.meta.pts, f.rgb) for f in tasks._shot_frames(source, start, end)]
            decoded = source.decoded_frames
        assert_same(got, want[start:end])
        # The frame read at opening, the GOP up to the shot, the shot, what frame threading
        # had decoded ahead when the shot ended.
        assert decoded <= 1 + start % clip.gop + (end - start) + 8, (start, decoded)


def test_starting_at_the_end_gives_no_frames_and_no_warning(tmp_path, caplog):
    path = write_clip(tmp_path, CLIPS[0])
    with open_source(path) as source:
        frames = list(source.frames())
    tracker = AnchorTracker()
    for frame in frames:
        tracker.observe(frame.meta.index, frame.meta.pts, frame.meta.keyframe)
    caplog.set_level(logging.WARNING, logger="colorize")
    with open_source(path) as source:
        assert list(source.frames_from(40, tracker.anchor_for(40))) == []
    assert not [r for r in caplog.records if r.name.startswith("colorize")]


def test_shot_tasks_of_an_unseekable_film_decode_from_the_start_without_scanning(tmp_path,
                                                                                 monkeypatch,
                                                                                 caplog):
    from PIL import Image

    from colorize.batch import tasks
    from colorize.batch.plan import build_plan

    folder = tmp_path / "in"
    folder.mkdir()
    raw = raw_h264(folder)
    (folder / "h264_cfr.mp4").unlink()
    Image.new("RGB", (64, 48), (200, 90, 30)).save(folder / "raw.png")
    (tmp_path / "cuts.txt").write_text("20\n")
    manifest = tmp_path / "films.jsonl"      # .h264 is no batch folder extension
    manifest.write_text('{"input": "in/raw.h264", "references": "in/raw.png"}\n')
    [job] = build_plan(manifest, tmp_path / "out", {"shots": str(tmp_path / "cuts.txt")}).jobs
    context = tasks.WorkerContext(tasks.WorkerSettings(weights="unused"))
    index_path = tmp_path / "frame-index.json"
    result = tasks.execute_task(context, tasks.Task("0:cuts", "cuts", job,
                                                    frame_index=str(index_path)))
    assert result.ok and result.cuts == [20]
    with pytest.raises(NotSeekableError, match="no timestamp"):
        FrameIndex.load(index_path)

    def no_scan(*args, **kwargs):
        raise AssertionError("the cuts task already said this film cannot be seeked")

    monkeypatch.setattr("colorize.video.source.scan_frame_index", no_scan)
    caplog.set_level(logging.WARNING, logger="colorize")
    with tasks._open(job) as source:
        tasks._use_frame_index(source, str(index_path))
        got = [(f.meta.index, f.meta.pts, f.rgb) for f in tasks._shot_frames(source, 20, 40)]
    assert_same(got, decode_all(raw)[20:])
    assert any("cannot seek exactly to frame 20" in r.getMessage() and "no timestamp" in
               r.getMessage() for r in caplog.records)


MP4_CLIPS = [c for c in CLIPS if c.name.endswith((".mp4", ".mov"))]


def full_scan(path: Path) -> FrameIndex:
    with av.open(str(path)) as container:
        return seek.index_from_packets(seek._packets(container, container.streams.video[0]))


@pytest.mark.parametrize("clip", MP4_CLIPS, ids=[c.name for c in MP4_CLIPS])
def test_an_mp4_index_comes_from_its_header_without_reading_the_film(clip, tmp_path,
                                                                     monkeypatch):
    path = write_clip(tmp_path, clip)
    want = full_scan(path)

    def no_read(*args, **kwargs):
        raise AssertionError("an MP4's index should come from its header")

    monkeypatch.setattr(seek, "_packets", no_read)
    assert seek.scan_frame_index(path, 0) == want


def test_an_mp4_header_that_disagrees_with_its_packets_is_not_trusted(tmp_path, monkeypatch):
    from colorize.video import mp4_header

    path = write_clip(tmp_path, CLIPS[0])
    want = full_scan(path)
    real, read = mp4_header.composition_offsets, seek._packets
    reads = []
    monkeypatch.setattr(seek, "composition_offsets",
                        lambda *args: [offset + 1 for offset in real(*args)])
    monkeypatch.setattr(seek, "_packets", lambda *args: reads.append(1) or read(*args))
    assert seek.scan_frame_index(path, 0) == want
    assert reads == [1]                                 # read from the packets instead


def test_a_fragmented_mp4_is_indexed_from_its_packets(tmp_path):
    from colorize.video.mp4_header import composition_offsets

    plain = write_clip(tmp_path, CLIPS[0])
    fragmented = tmp_path / "fragmented.mp4"
    with av.open(str(plain)) as source, av.open(str(fragmented), "w", options={
            "movflags": "frag_keyframe+empty_moov"}) as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(video=0):
            if packet.size:
                packet.stream = stream
                target.mux(packet)
    with av.open(str(fragmented)) as container:
        video = container.streams.video[0]
        assert composition_offsets(fragmented, video.id, 40) is None
    index = seek.scan_frame_index(fragmented, 0)
    assert index == full_scan(fragmented) and index.frame_count == 40


def test_the_cuts_task_of_shots_auto_indexes_the_frames_it_decodes(tmp_path):
    """--shots auto decodes the film anyway: its frames give the index, equal to a scan's."""
    pytest.importorskip("scenedetect")
    from PIL import Image

    from colorize.batch import tasks
    from colorize.batch.plan import build_plan

    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "film.mkv"       # no frame count in the header: the frames are decoded
    x = np.arange(64)[None, :, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"x264-params": X264.format(gop=8)})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(40):
            level = (x * 3 + index * 2) % 200 if index < 20 else 255 - (x * 3 + index * 2) % 200
            rgb = np.broadcast_to(level, (48, 64, 3)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
    Image.new("RGB", (64, 48), (200, 90, 30)).save(folder / "film.png")
    [job] = build_plan(folder, tmp_path / "out", {"shots": "auto"}).jobs
    index_path = tmp_path / "frame-index.json"
    result = tasks.execute_task(tasks.WorkerContext(tasks.WorkerSettings(weights="unused")),
                                tasks.Task("0:cuts", "cuts", job, frame_index=str(index_path)))
    assert result.ok, result.error
    assert result.cuts == [20] and result.frame_count == 40
    assert FrameIndex.load(index_path) == full_scan(path)
