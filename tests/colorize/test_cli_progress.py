"""The progress displays (frames, batch, download bytes): counts, rates, ETA, estimates, resume,
quiet mode, terminal vs plain output."""

from __future__ import annotations

import gc
import io

from colorize.batch.progress import BatchProgress
from colorize.progress import ProgressReporter, format_duration
from colorize.weights.progress import ByteProgress

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
    assert len(lines) == 5  # 25 s of work at one line per 5 s; the last is the final state
    assert lines[0] == "frames 10/50 (20%), 2.00 fps, ETA 0:20"
    assert lines[-1] == "frames 50/50 (100%), 2.00 fps, elapsed 0:25"
    assert "\r" not in out.getvalue()


def test_terminal_redraws_in_place():
    clock = FakeClock()
    out = TtyBuffer()
    progress = ProgressReporter(total=4, stream=out, clock=clock)
    for _ in range(4):
        clock.now += 1
        progress.advance()
    progress.finish()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1  # one line, redrawn with \r
    redraws = text.rstrip("\n").split("\r")
    assert len(redraws) >= 5  # the start and every frame (each a second apart)
    assert redraws[-1].startswith("frames 4/4 (100%) |")  # tqdm draws the bar
    assert redraws[-1].endswith("| 1.00 fps, elapsed 0:04")


def test_after_resume_fps_and_eta_count_only_this_runs_frames():
    clock = FakeClock()
    out = io.StringIO()
    progress = ProgressReporter(total=224, stream=out, clock=clock)
    progress.resume_from(60)  # frames an earlier run finished, skipped in no time
    assert progress.line() == "frames 60/224 (27%), 0.00 fps, elapsed 0:00"
    for _ in range(10):
        clock.now += 0.5
        progress.advance()
    assert progress.line() == "frames 70/224 (31%), 2.00 fps, ETA 1:17"
    progress.finish()
    assert out.getvalue().splitlines() == ["frames 70/224 (31%), 2.00 fps, ETA 1:17"]


def test_a_bar_dropped_without_finish_draws_nothing_more():
    # A failed run's error is printed after the last progress line; when the reporter is
    # collected later, tqdm closes its bar, which must not draw it again under the error.
    clock = FakeClock()
    out = io.StringIO()
    progress = ProgressReporter(total=100, stream=out, clock=clock)
    for _ in range(12):
        clock.now += 0.5
        progress.advance()
    out.write("error: something failed\n")
    del progress
    gc.collect()
    assert out.getvalue().endswith("frames 10/100 (10%), 2.00 fps, ETA 0:45\nerror: something failed\n")


def test_an_abandoned_bar_ends_a_terminal_line_and_adds_nothing_to_a_log():
    clock = FakeClock()
    log, terminal = io.StringIO(), TtyBuffer()
    for out in (log, terminal):
        progress = ProgressReporter(total=100, stream=out, clock=clock)
        clock.now += 6
        progress.advance(12)
        progress.abandon()  # the run failed; its error comes next
    assert log.getvalue() == "frames 12/100 (12%), 2.00 fps, ETA 0:44\n"
    assert terminal.getvalue().endswith("| 2.00 fps, ETA 0:44\n")


def test_disabled_reporter_writes_nothing():
    out = io.StringIO()
    progress = ProgressReporter(total=3, enabled=False, stream=out)
    progress.advance(3)
    progress.finish()
    assert out.getvalue() == ""


def test_batch_line_counts_videos_and_fps_over_workers_without_skipped_frames():
    clock = FakeClock()
    out = io.StringIO()
    progress = BatchProgress(videos=4, total_frames=400, stream=out, clock=clock)
    progress.video_finished("skipped", frames=100)  # done before: not work, not in the ETA
    clock.now += 10
    progress.add_frames(30)                          # two workers' frames
    progress.add_frames(30)
    progress.video_finished("failed")
    assert progress.line() == "videos 2/4 (1 failed, 1 skipped), frames 60, 6.00 fps, ETA 0:40"
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("videos 1/4 (1 skipped), frames 0")  # a line per finished video
    assert lines[-1] == "videos 2/4 (1 failed, 1 skipped), frames 60, 6.00 fps, ETA 0:40"
    assert "\r" not in out.getvalue()


def test_batch_terminal_bar_and_quiet():
    out = TtyBuffer()
    progress = BatchProgress(videos=1, total_frames=10, stream=out, clock=FakeClock())
    progress.add_frames(10)
    progress.video_finished("ok", frames=10)
    progress.finish()
    assert out.getvalue().rstrip("\n").split("\r")[-1].startswith("videos 1/1 |##########| frames 10")
    silent = io.StringIO()
    quiet = BatchProgress(videos=1, enabled=False, stream=silent)
    quiet.add_frames(3)
    quiet.video_finished("ok")
    quiet.finish()
    assert silent.getvalue() == "" and quiet.frames == 3


def test_download_counts_bytes_and_rates_only_this_attempts_bytes():
    clock = FakeClock()
    out = io.StringIO()
    progress = ByteProgress("w.pth", total=10_000_000, done=4_000_000, stream=out, clock=clock)
    clock.now += 2
    progress.advance(2_000_000)  # resumed at 4 MB: 2 MB in 2 s is 1 MB/s
    assert progress.line() == "w.pth  60% 6.0 MB / 10.0 MB, 1.0 MB/s"
    progress.finish()
    progress.finish()  # a second finish writes nothing
    assert out.getvalue().splitlines() == ["w.pth  60% 6.0 MB / 10.0 MB, 1.0 MB/s"]
    unknown = ByteProgress("w.pth", total=None, done=0, enabled=False, clock=clock)
    unknown.advance(1_500_000)
    assert unknown.line().startswith("w.pth 1.5 MB, ")


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
