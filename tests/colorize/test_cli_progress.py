"""The progress line: counts, fps, ETA, estimates, quiet mode, terminal vs plain output."""

from __future__ import annotations

import io

from colorize.progress import ProgressReporter, format_duration

from video_helpers import gray_frames, invoke, write_video


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_shows_done_total_fps_and_eta():
    clock = FakeClock()
    progress = ProgressReporter(total=100, stream=io.StringIO(), clock=clock)
    clock.now += 10
    progress.advance(20)
    assert progress.line() == "frames 20/100 (20%), 2.00 fps, ETA 0:40"


def test_estimated_total_is_marked_and_dropped_when_exceeded():
    clock = FakeClock()
    progress = ProgressReporter(total=10, total_is_estimate=True, stream=io.StringIO(), clock=clock)
    clock.now += 1
    progress.advance(5)
    assert "frames 5/~10" in progress.line()
    progress.advance(7)
    assert progress.line().startswith("frames 12, ")


def test_unknown_total_shows_elapsed():
    clock = FakeClock()
    progress = ProgressReporter(total=None, stream=io.StringIO(), clock=clock)
    clock.now += 75
    progress.advance(3)
    assert progress.line() == "frames 3, 0.04 fps, elapsed 1:15"


def test_plain_stream_gets_a_line_every_few_seconds():
    clock = FakeClock()
    out = io.StringIO()
    progress = ProgressReporter(total=50, stream=out, clock=clock)
    for _ in range(50):
        clock.now += 0.5
        progress.advance()
    progress.finish()
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 7  # 25 s of work at one line per 5 s, plus the final line
    assert lines[-1].startswith("frames 50/50 (100%)")
    assert "\r" not in out.getvalue()


def test_terminal_redraws_in_place():
    clock = FakeClock()
    out = TtyBuffer()
    progress = ProgressReporter(total=4, stream=out, clock=clock)
    for _ in range(4):
        clock.now += 1
        progress.advance()
    progress.finish()
    assert out.getvalue().count("\r") == 5
    assert out.getvalue().endswith("\n")


def test_disabled_reporter_writes_nothing():
    out = io.StringIO()
    progress = ProgressReporter(total=3, enabled=False, stream=out)
    progress.advance(3)
    progress.finish()
    assert out.getvalue() == ""


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"


def test_cli_reports_progress_on_stderr_and_quiet_silences_it(
    tmp_path, fake_colorizer, red_reference
):
    source = write_video(tmp_path / "clip.mp4", gray_frames(3))
    loud = invoke([source, "--ref", red_reference, "-o", tmp_path / "a.mp4"])
    assert "frames 3/3 (100%)" in loud.stderr
    assert loud.stdout.strip() == str(tmp_path / "a.mp4")  # stdout holds only the result

    quiet = invoke([source, "--ref", red_reference, "-o", tmp_path / "b.mp4", "--quiet"])
    assert quiet.stderr == ""
    assert quiet.stdout.strip() == str(tmp_path / "b.mp4")
