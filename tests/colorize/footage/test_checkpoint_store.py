"""The resume checkpoint's files: atomic saves, damage detection, fingerprints, stored parts."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from colorize.errors import CheckpointUnusableError
from colorize.footage.checkpoint import CheckpointFolder, CheckpointRecord, checkpoint_dir_for
from colorize.footage.fingerprint import build_fingerprint, describe_changes, file_fingerprint
from colorize.footage.parts import VideoSegmentParts
from colorize.video.target import OutputTarget


def record(next_frame: int) -> CheckpointRecord:
    return CheckpointRecord(next_frame=next_frame, fingerprint={"input": {"size": 1}},
                            engine_meta={"k": next_frame}, state_file=None, state_sha256=None)


def test_checkpoint_folder_sits_beside_the_output(tmp_path: Path) -> None:
    assert checkpoint_dir_for(tmp_path / "out.mp4") == tmp_path / "out.mp4.colorize-resume"
    assert checkpoint_dir_for(Path(str(tmp_path / "frames") + "/")) == tmp_path / "frames.colorize-resume"


def test_save_then_load_round_trips_and_keeps_one_state_file(tmp_path: Path) -> None:
    folder = CheckpointFolder(tmp_path / "c")
    folder.save(record(4), {"a": torch.arange(6.0)})
    folder.save(record(8), {"a": torch.arange(6.0) * 2})
    loaded = folder.load()
    assert loaded.next_frame == 8 and loaded.engine_meta == {"k": 8}
    assert torch.equal(folder.load_state(loaded)["a"], torch.arange(6.0) * 2)
    assert [p.name for p in folder.path.glob("state-*")] == [loaded.state_file]


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch) -> None:
    folder = CheckpointFolder(tmp_path / "c")
    folder.save(record(4), {"a": torch.ones(3)})
    real_replace = os.replace

    def crash_on_record(src, dst):
        if str(dst).endswith("checkpoint.json"):
            raise KeyboardInterrupt  # the process dies between the state and the record
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_record)
    with pytest.raises(KeyboardInterrupt):
        folder.save(record(8), {"a": torch.zeros(3)})
    monkeypatch.setattr(os, "replace", real_replace)
    loaded = folder.load()
    assert loaded.next_frame == 4
    assert torch.equal(folder.load_state(loaded)["a"], torch.ones(3))
    folder.remove_stray_states(keep=loaded.state_file)
    assert [p.name for p in folder.path.iterdir() if p.name.startswith("state")] == [loaded.state_file]


@pytest.mark.parametrize("damage", ["truncated json", "state bytes", "state missing"])
def test_damage_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    folder = CheckpointFolder(tmp_path / "c")
    folder.save(record(4), {"a": torch.ones(100)})
    saved = folder.load()
    if damage == "truncated json":
        path = folder.path / "checkpoint.json"
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "state bytes":
        path = folder.path / saved.state_file
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        (folder.path / saved.state_file).unlink()
    with pytest.raises(CheckpointUnusableError) as caught:
        folder.load_state(folder.load())
    message = str(caught.value)
    assert "damaged" in message and "delete that folder" in message and "\n" not in message


def test_fingerprint_names_what_changed(tmp_path: Path) -> None:
    video, ref = tmp_path / "in.mp4", tmp_path / "ref.png"
    video.write_bytes(b"x" * 5000)
    ref.write_bytes(b"r" * 100)
    before = build_fingerprint(video, {"main": ref}, {"top_k": 30, "crf": 18})
    assert describe_changes(before, build_fingerprint(video, {"main": ref}, {"top_k": 30, "crf": 18})) == []
    os.utime(video, (1, 1))  # a copy with new times is still the same input
    assert describe_changes(before, build_fingerprint(video, {"main": ref}, {"top_k": 30, "crf": 18})) == []
    assert describe_changes(before, build_fingerprint(video, {"main": ref}, {"top_k": 20, "crf": 18})) == [
        "--top-k 30 -> 20"]
    ref.write_bytes(b"s" * 100)
    changes = describe_changes(before, build_fingerprint(video, {"main": ref}, {"top_k": 30, "crf": 18}))
    assert changes == ["reference main content changed (ref.png -> ref.png, same size)"]
    video.write_bytes(b"x" * 4000)
    assert "input is another file" in describe_changes(before, build_fingerprint(video, {"main": ref}, {"top_k": 30, "crf": 18}))[0]


def test_sampled_hash_sees_a_change_in_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes())
    path.write_bytes(bytes(data))
    first = file_fingerprint(path)
    assert "blocks" in first["hash_method"]
    data[-1] ^= 1  # the tail block is always sampled
    path.write_bytes(bytes(data))
    assert file_fingerprint(path)["hash"] != first["hash"]


def test_video_segments_resume_drops_the_unfinished_part_and_join_without_encoding(tmp_path: Path) -> None:
    """Segments in the output's own codec: a resumed set joins into the file a direct encode
    writes (lossless here, so the frames compare exactly), timestamps and audio included."""
    from colorize.video.sink import VideoFileSink
    from colorize.video.source import open_source

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video_helpers import read_video, write_video

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(7)]
    clip = write_video(tmp_path / "in.mp4", frames, pts=[0, 2, 3, 7, 8, 9, 12],
                       time_base=Fraction(1, 24), audio_codec="aac")
    folder = tmp_path / "c" / "frames"
    folder.mkdir(parents=True)
    target = OutputTarget(tmp_path / "out.mp4", "video", container_format="mp4")
    with open_source(clip) as source:
        decoded = list(source.frames())
    with open_source(clip) as source:
        parts = VideoSegmentParts(folder, target, source, lambda: open_source(clip), crf=0)
        for frame in decoded[:6]:
            parts.write(frame.rgb, frame.meta)
            if frame.meta.index in (1, 3):
                saved = parts.make_durable()
        parts.abort()                 # killed after frame 5: frames 4 and 5 were never durable
    assert any(name.startswith(".") for name in os.listdir(folder)) is False
    with open_source(clip) as source:
        again = VideoSegmentParts(folder, target, source, lambda: open_source(clip), crf=0)
        again.resume(saved, next_frame=4)
        assert sorted(p.name for p in folder.iterdir()) == [s["file"] for s in saved["segments"]]
        for frame in decoded[4:]:
            again.write(frame.rgb, frame.meta)
        again.commit()
    direct_target = OutputTarget(tmp_path / "direct.mp4", "video", container_format="mp4")
    with open_source(clip) as source:
        direct = VideoFileSink(direct_target, source, crf=0)
        for frame in source.frames():
            direct.write(frame.rgb, frame.meta)
        direct.commit()
    got, want = read_video(target.path), read_video(direct_target.path)
    assert len(got.frames) == 7
    assert got.times == want.times
    assert got.audio_codecs == want.audio_codecs == ["aac"]
    for a, b in zip(got.frames, want.frames):
        assert np.array_equal(a, b)
    with pytest.raises(CheckpointUnusableError, match="position"):
        with open_source(clip) as source:
            VideoSegmentParts(folder, target, source, lambda: open_source(clip), crf=0).resume(
                saved, next_frame=5)


def test_automatic_interval_keeps_saving_under_three_percent(tmp_path: Path, monkeypatch) -> None:
    from colorize.footage import resume
    from colorize.footage.resume import CheckpointSettings, ResumeSession

    clock = [1000.0]
    monkeypatch.setattr(resume.time, "monotonic", lambda: clock[0])
    frames = SimpleNamespace(min_frames_between=1)      # PNG frames: the time rule alone
    session = ResumeSession(CheckpointFolder(tmp_path / "c"), parts=frames, fingerprint={},
                            settings=CheckpointSettings(every=None))
    session._last_save = clock[0]
    clock[0] += resume.AUTO_MIN_SECONDS - 0.1
    assert not session._due(5)
    clock[0] += 0.2
    assert session._due(6)
    session._last_cost, session._last_save = 0.9, clock[0]  # a slow save: 0.9 s
    clock[0] += 29.0
    assert not session._due(7)  # 0.9 s is more than 3% of 29 s
    clock[0] += 1.1
    assert session._due(8)


def test_fixed_interval_counts_from_the_resumed_frame(tmp_path: Path) -> None:
    from colorize.footage.resume import CheckpointSettings, ResumeSession

    session = ResumeSession(CheckpointFolder(tmp_path / "c"), parts=None, fingerprint={},
                            settings=CheckpointSettings(every=4))
    assert [i for i in range(12) if session._due(i)] == [3, 7, 11]
    session.start_frame = 6
    assert [i for i in range(6, 16) if session._due(i)] == [9, 13]


def test_joined_decode_times_stay_increasing_across_a_segment_start() -> None:
    """A part whose encoder start-up delay reaches back before the previous part's last decode
    time is moved forward where its presentation time allows; otherwise the join is refused."""
    from types import SimpleNamespace

    from colorize.video.join import DtsOverlapError, JoinedVideoSink

    joiner = SimpleNamespace(_last_dts=None)
    separate = JoinedVideoSink._separate_decode_times
    packets = [SimpleNamespace(pts=p, dts=d) for p, d in [(0, -2), (2, -1), (1, 0), (3, 1),
                                                          (10, 0), (12, 4), (11, 11)]]
    for packet in packets:
        separate(joiner, packet)
    assert [p.dts for p in packets] == [-2, -1, 0, 1, 2, 4, 11]
    assert all(p.dts <= p.pts for p in packets)
    with pytest.raises(DtsOverlapError):
        separate(joiner, SimpleNamespace(pts=11, dts=5))   # would need dts 12 > pts 11


def test_segments_that_cannot_be_joined_are_encoded_again(tmp_path: Path, monkeypatch, caplog) -> None:
    from colorize.video import join
    from colorize.video.source import open_source

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video_helpers import read_video, write_video

    y, x = np.mgrid[0:32, 0:48]
    frames = [np.stack([(4 * x + 30 * i) % 256, 6 * y + i, 255 - 3 * x], axis=-1).astype(np.uint8)
              for i in range(5)]                 # smooth: 4:2:0 keeps its colour
    clip = write_video(tmp_path / "in.mp4", frames)
    target = OutputTarget(tmp_path / "out.mp4", "video", container_format="mp4")

    def refuse(self, packet):
        raise join.DtsOverlapError("forced by the test")

    monkeypatch.setattr(join.JoinedVideoSink, "_separate_decode_times", refuse)
    with open_source(clip) as source:
        decoded = list(source.frames())
        parts = VideoSegmentParts(tmp_path / "c", target, source, lambda: open_source(clip), crf=0)
        for frame in decoded:
            parts.write(frame.rgb, frame.meta)
            if frame.meta.index == 2:
                parts.make_durable()
        parts.commit()
    assert "encoding out.mp4 again" in caplog.text
    got = read_video(target.path)
    assert len(got.frames) == 5 and got.times == read_video(clip).times
    assert not list(tmp_path.glob(".out.mp4*"))          # the aborted join left nothing
    # Lossless, twice through 4:2:0 and the BT.709 matrix: close to the frames written.
    for a, frame in zip(got.frames, decoded):
        assert np.abs(a.astype(int) - frame.rgb.astype(int)).max() <= 8


def test_report_log_keeps_the_counted_records_and_drops_a_cut_tail(tmp_path: Path) -> None:
    folder = CheckpointFolder(tmp_path / "c")
    folder.append_report([{"frame": 0, "score": 0.9}, {"frame": 1, "score": 0.8}])
    folder.append_report([{"frame": 2, "score": 0.7}])
    log = folder.path / "report.jsonl"
    with open(log, "a", encoding="utf-8") as handle:      # a save killed mid-append
        handle.write('{"frame": 3, "score": 0.6}\n{"frame": 4, "sc')
    assert [item["frame"] for item in folder.load_report(3)] == [0, 1, 2]
    assert log.read_text().count("\n") == 3                 # the uncounted lines are gone
    folder.append_report([{"frame": 3, "score": 0.5}])
    assert folder.load_report(4)[-1] == {"frame": 3, "score": 0.5}
    with pytest.raises(CheckpointUnusableError, match="holds 4 of its 6 records"):
        folder.load_report(6)


@pytest.mark.parametrize("suffix,container", [("mkv", "matroska"), ("webm", "webm"), ("mov", "mov")])
def test_segments_join_into_other_containers_with_the_direct_times(tmp_path: Path, suffix, container) -> None:
    from colorize.video.sink import VideoFileSink
    from colorize.video.source import open_source

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video_helpers import read_video, write_video

    y, x = np.mgrid[0:32, 0:48]
    frames = [np.stack([(4 * x + 30 * i) % 256, 6 * y + i, 255 - 3 * x], -1).astype(np.uint8)
              for i in range(6)]
    clip = write_video(tmp_path / "in.mp4", frames, pts=[0, 1, 5, 6, 20, 21],
                       time_base=Fraction(1, 30), audio_codec="aac")
    outputs = {}
    for name, segmented in (("joined", True), ("direct", False)):
        target = OutputTarget(tmp_path / f"{name}.{suffix}", "video", container_format=container)
        with open_source(clip) as source:
            sink = (VideoSegmentParts(tmp_path / "c", target, source, lambda: open_source(clip), crf=None)
                    if segmented else VideoFileSink(target, source, crf=None))
            for frame in source.frames():
                sink.write(frame.rgb, frame.meta)
                if segmented and frame.meta.index in (1, 3):
                    sink.make_durable()
            sink.commit()
        outputs[name] = read_video(target.path)
    joined, direct = outputs["joined"], outputs["direct"]
    assert len(joined.frames) == 6
    assert joined.times == direct.times
    assert joined.audio_codecs == direct.audio_codecs and joined.audio_codecs


def test_a_checkpoint_of_the_earlier_lossless_segments_is_refused_by_name(tmp_path: Path) -> None:
    from colorize.video.source import open_source

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from video_helpers import write_video

    clip = write_video(tmp_path / "in.mp4", [np.zeros((16, 16, 3), np.uint8)] * 2)
    target = OutputTarget(tmp_path / "out.mp4", "video", container_format="mp4")
    with open_source(clip) as source:
        parts = VideoSegmentParts(tmp_path / "c", target, source, lambda: open_source(clip), crf=None)
        with pytest.raises(CheckpointUnusableError, match="earlier colorize .*delete that folder"):
            parts.resume({"kind": "video-segments", "segments": []}, next_frame=0)
