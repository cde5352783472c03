"""--ref [FRAME=]PATH and --ref-dir parsing into a reference schedule (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from colorize.errors import ReferenceUnreadableError
from colorize.footage.references import (
    ReferenceSchedule,
    ReferenceScheduleError,
    ReferenceSpec,
    parse_ref_option,
    read_reference_dir,
)


def test_plain_and_frame_forms():
    assert parse_ref_option("ref.png") == ReferenceSpec(Path("ref.png"))
    assert parse_ref_option("120=key.png") == ReferenceSpec(Path("key.png"), 120)
    # A file whose name starts with digits and '=' is reachable with a folder prefix.
    assert parse_ref_option("./12=x.png") == ReferenceSpec(Path("./12=x.png"))


def test_schedule_main_keyframes_and_the_reference_of_each_shot():
    schedule = ReferenceSchedule.from_specs(
        [parse_ref_option("main.png"), parse_ref_option("40=b.png"), parse_ref_option("10=a.png")])
    assert schedule.main == Path("main.png")
    assert schedule.frames == [0, 10, 40]
    assert [schedule.for_shot(s) for s in (0, 9, 10, 39, 40, 99)] == [0, 0, 10, 10, 40, 40]
    assert schedule.in_use(30, shot_start=5) == 10 and schedule.in_use(8, shot_start=5) == 0
    schedule.check_frame_count(41)
    with pytest.raises(ReferenceScheduleError, match="frame 40 .* beyond the end"):
        schedule.check_frame_count(40)


def test_two_references_for_one_frame_and_none_for_frame_0_are_refused():
    with pytest.raises(ReferenceScheduleError, match="two references for frame 0"):
        ReferenceSchedule.from_specs([parse_ref_option("a.png"), parse_ref_option("0=b.png")])
    with pytest.raises(ReferenceScheduleError, match="two references for frame 5"):
        ReferenceSchedule.from_specs([parse_ref_option("a.png"), parse_ref_option("5=b.png"),
                                      parse_ref_option("5=c.png")])
    with pytest.raises(ReferenceScheduleError, match="no reference for frame 0"):
        ReferenceSchedule.from_specs([parse_ref_option("5=b.png")])


def test_reference_dir_uses_the_havc_naming(tmp_path):
    for name in ("ref_000000.png", "ref_120.jpg", "notes.txt", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    specs = read_reference_dir(tmp_path)
    assert [(s.frame, s.path.name) for s in specs] == [(0, "ref_000000.png"), (120, "ref_120.jpg")]
    with pytest.raises(ReferenceUnreadableError, match="not found"):
        read_reference_dir(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReferenceUnreadableError, match="no ref_<frame>"):
        read_reference_dir(empty)
