"""``--shots FILE`` with editors' timelines (FCP 7 XML, FCPX XML, OpenTimelineIO), read through
OpenTimelineIO, and the shots of a run written back as ``shots.otio`` / ``shots.edl``.

The timeline files are written by OpenTimelineIO's own adapters (as an editor's export would
be), from a track of known clips, a gap and a dissolve, so the expected cuts are known exactly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from colorize.errors import ColorizeError, ShotListError
from colorize.footage.shots import read_shots_file, shots_from_cuts

otio = pytest.importorskip("opentimelineio",
                           reason="OpenTimelineIO (colorize-video[timeline]) not installed")

RATE = 24
# Track: clip of 10 frames, a gap of 4, a clip of 15, a dissolve of 2+2 into a clip of 15.
# Cuts: the gap at 10, the next clip at 14, the dissolve where it starts (29 - 2 = 27).
EXPECTED = [10, 14, 27]
FRAMES = 44


def _timeline(rate: float = RATE, start_timecode: int = 3600) -> "otio.schema.Timeline":
    time, span = otio.opentime.RationalTime, otio.opentime.TimeRange
    media = dict(target_url="file:///films/film.mov", available_range=span(time(0, rate),
                                                                          time(500, rate)))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)

    def clip(name: str, source_start: int, length: int) -> "otio.schema.Clip":
        return otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(**media),
                                source_range=span(time(source_start, rate), time(length, rate)))

    track.append(clip("street", 100, 10))
    track.append(otio.schema.Gap(source_range=span(time(0, rate), time(4, rate))))
    track.append(clip("kitchen", 300, 15))
    track.append(otio.schema.Transition(in_offset=time(2, rate), out_offset=time(2, rate)))
    track.append(clip("street again", 120, 15))
    # A second video track (a title) does not add cuts: the first track is the picture.
    title = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    title.append(otio.schema.Gap(source_range=span(time(0, rate), time(5, rate))))
    title.append(clip("title", 0, 3))
    timeline = otio.schema.Timeline(name="reel 1",
                                    global_start_time=time(start_timecode * rate, rate))
    timeline.tracks.extend([track, title])
    return timeline


def _export(tmp_path: Path, adapter: str, name: str, rate: float = RATE) -> Path:
    path = tmp_path / name
    path.write_text(otio.adapters.write_to_string(_timeline(rate), adapter))
    return path


# OpenTimelineIO's FCPX writer leaves transitions out, so there the dissolve is a plain cut at
# the incoming clip's start.
@pytest.mark.parametrize("adapter, name, expected", [
    ("fcp_xml", "cut.xml", EXPECTED),
    ("fcpx_xml", "cut.fcpxml", [10, 14, 29]),
    ("otio_json", "cut.otio", EXPECTED),
])
def test_timeline_files_give_the_cuts_of_the_first_video_track(tmp_path, adapter, name, expected):
    path = _export(tmp_path, adapter, name)
    assert read_shots_file(path, FRAMES, fps=RATE) == expected


def test_fcpxmld_bundle_is_read_through_its_info_fcpxml(tmp_path):
    bundle = tmp_path / "cut.fcpxmld"
    bundle.mkdir()
    _export(bundle, "fcpx_xml", "Info.fcpxml")
    assert read_shots_file(bundle, FRAMES, fps=RATE) == [10, 14, 29]


def test_format_is_recognised_from_the_content_not_the_name(tmp_path):
    path = _export(tmp_path, "fcp_xml", "cuts.txt")
    assert read_shots_file(path, FRAMES, fps=RATE) == EXPECTED


def test_timeline_at_another_rate_is_placed_by_time(tmp_path):
    """A 24 fps timeline against its 48 fps render: the cuts fall at the same moments."""
    path = _export(tmp_path, "otio_json", "cut.otio")
    assert read_shots_file(path, 2 * FRAMES, fps=48) == [2 * cut for cut in EXPECTED]


def test_without_the_video_rate_the_timeline_rate_is_used(tmp_path):
    path = _export(tmp_path, "otio_json", "cut.otio")
    assert read_shots_file(path, None, fps=None) == EXPECTED


def test_cut_past_the_end_names_the_clip(tmp_path):
    path = _export(tmp_path, "fcp_xml", "cut.xml")
    with pytest.raises(ShotListError) as caught:
        read_shots_file(path, 20, fps=RATE)
    message = str(caught.value)
    assert "\n" not in message and "'street again'" in message and "frame 27" in message


def test_damaged_timeline_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "cut.xml"
    path.write_text('<?xml version="1.0"?>\n<xmeml version="4"><sequence><media>')
    with pytest.raises(ShotListError) as caught:
        read_shots_file(path, FRAMES, fps=RATE)
    assert str(caught.value).startswith(f"shots file {path} is not a readable FCP 7 XML")
    assert "\n" not in str(caught.value)


def test_timeline_without_video_track_is_refused(tmp_path):
    timeline = otio.schema.Timeline(name="sound only")
    timeline.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Audio))
    path = tmp_path / "cut.otio"
    path.write_text(otio.adapters.write_to_string(timeline, "otio_json"))
    with pytest.raises(ShotListError, match="has no video track"):
        read_shots_file(path, FRAMES, fps=RATE)


def test_missing_opentimelineio_says_which_extra(tmp_path, hide_package):
    path = _export(tmp_path, "fcp_xml", "cut.xml")
    hide_package("opentimelineio")
    with pytest.raises(ColorizeError) as caught:
        read_shots_file(path, FRAMES, fps=RATE)
    message = str(caught.value)
    assert "colorize-video[timeline]" in message and "FCP 7 XML" in message
    assert "\n" not in message


def test_plain_lists_and_edls_are_still_read_without_opentimelineio(tmp_path, hide_package):
    hide_package("opentimelineio")
    plain = tmp_path / "cuts.txt"
    plain.write_text("0\n10\n14\n")
    assert read_shots_file(plain, FRAMES) == [10, 14]
    edl = tmp_path / "cut.edl"
    edl.write_text("TITLE: t\n\n001  AX  V  C  01:00:00:00 01:00:00:10 01:00:00:00 01:00:00:10\n"
                   "002  AX  V  C  01:00:00:10 01:00:01:00 01:00:00:10 01:00:01:00\n")
    assert read_shots_file(edl, FRAMES, fps=RATE) == [10]


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(25), Fraction(30000, 1001)])
def test_shot_timeline_round_trips_through_shots(tmp_path, fps):
    from colorize.footage.timeline import write_shot_timeline

    frames = 4000
    cuts = [12, 250, 1799, 1800, 3999]
    film = tmp_path / "film.mp4"
    otio_path, edl_path = write_shot_timeline(tmp_path, shots_from_cuts(cuts, frames), fps,
                                              media=film)
    assert (otio_path.name, edl_path.name) == ("shots.otio", "shots.edl")
    assert read_shots_file(otio_path, frames, fps=fps) == cuts
    assert read_shots_file(edl_path, frames, fps=fps) == cuts
    # Each clip of the timeline is its shot of the film.
    timeline = otio.adapters.read_from_file(str(otio_path))
    [track] = timeline.video_tracks()
    clips = list(track)
    assert len(clips) == len(cuts) + 1
    assert clips[1].source_range.start_time.value == 12
    assert clips[1].media_reference.target_url == film.resolve().as_uri()


def test_shot_timeline_is_written_atomically_over_an_old_one(tmp_path):
    from colorize.footage.timeline import write_shot_timeline

    (tmp_path / "shots.edl").write_text("old")
    write_shot_timeline(tmp_path, shots_from_cuts([5], 10), 25)
    assert (tmp_path / "shots.edl").read_text().startswith("TITLE: shots")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shots.edl", "shots.otio"]


def test_colorize_plan_shows_the_shots_of_an_fcp_xml(tmp_path, red_reference):
    from video_helpers import gray_frames, invoke, write_video

    clip = write_video(tmp_path / "film.mp4", gray_frames(FRAMES, 32, 24), fps=RATE)
    cut = _export(tmp_path, "fcp_xml", "cut.xml")
    result = invoke([clip, "--ref", red_reference, "--shots", cut, "--plan"])
    assert "shot    1: frames 10-13" in result.stdout
    assert "shot    3: frames 27-43" in result.stdout
