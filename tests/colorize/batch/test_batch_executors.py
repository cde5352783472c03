"""Both executors, the same scenarios: 8 videos done once; a worker killed mid-task (every video
still done exactly once); a rerun skips everything; one corrupt video among 8.

These use a fake engine (``batch_helpers.build_fake``: a tint, ``BATCH_TEST_DELAY`` seconds a
frame) because they test scheduling, retries and the results file, not colours; the real engine
with synthetic weights runs in ``test_shots.py`` and ``test_cli.py``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

import batch_helpers as h
from colorize.batch.cli import run
from colorize.batch.plan import build_plan
from colorize.batch.progress import BatchProgress
from colorize.batch.results import ResultsFile, sha256_of
from colorize.batch.runner import run_batch
from colorize.batch.tasks import WorkerSettings

FAKE = WorkerSettings(weights="unused.safetensors", device="cpu", precision="fp32",
                      colorizer_factory="batch_helpers:build_fake")


@pytest.fixture(params=["local", "ray"])
def kind(request) -> str:
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


def make_executor(kind: str, **kwargs):
    if kind == "local":
        from colorize.batch.local import LocalExecutor

        return LocalExecutor(FAKE, workers=2, **kwargs)
    from colorize.batch.ray_executor import RayExecutor

    return RayExecutor(FAKE, "local", cpus_per_task=1, **kwargs)


def batch(kind: str, source: Path, outdir: Path, executor=None):
    plan = build_plan(source, outdir)
    return run_batch(plan, executor or make_executor(kind), ResultsFile(outdir),
                     weights_label="unused.safetensors",
                     progress=BatchProgress(len(plan.jobs), enabled=False))


def ok_counts(outdir: Path) -> Counter:
    return Counter(line["input"] for line in h.lines(outdir) if line["status"] == "ok")


def test_eight_videos_done_once_then_a_rerun_skips_all(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH_TEST_DELAY", "0.02")
    source = h.make_folder(tmp_path / "in", videos=8, frames=6)
    outdir = tmp_path / "out"
    summary = batch(kind, source, outdir)
    lines = h.lines(outdir)
    assert [line["status"] for line in lines] == ["ok"] * 8
    assert sorted(Path(line["input"]).name for line in lines) == \
        [f"clip_{n:02d}.mp4" for n in range(8)]
    for line in lines:
        output = Path(line["output"])
        assert output.parent == outdir and output.name == Path(line["input"]).name
        assert line["frames"] == 6 and line["sha256"] == sha256_of(output)
        assert len(h.decode(output)) == 6
    # Once per worker, not once per video (Ray workers live for the session, so an earlier
    # test may already have loaded the fake model in them).
    assert summary.model_loads <= 2 and (kind == "ray" or summary.model_loads >= 1)
    assert [p.name for p in outdir.iterdir() if p.name.startswith(".")] == []
    # Rerun: every output is complete and unchanged, so nothing runs and no model is loaded.
    before = {p: p.stat().st_mtime_ns for p in outdir.glob("*.mp4")}
    again = batch(kind, source, outdir)
    assert again.count("skipped") == 8 and again.model_loads == 0
    assert {p: p.stat().st_mtime_ns for p in outdir.glob("*.mp4")} == before
    # A damaged output is redone, the others are skipped.
    damaged = outdir / "clip_03.mp4"
    damaged.write_bytes(damaged.read_bytes()[:100])
    third = batch(kind, source, outdir)
    assert third.count("skipped") == 7 and third.count("ok") == 1
    assert len(h.decode(damaged)) == 6


def _kill_local_worker_once(executor, victim: str, killed: list[int]):
    def on_started(task, pid: int) -> None:
        if task.task_id == victim and not killed:
            psutil.Process(pid).kill()     # SIGKILL on POSIX, TerminateProcess on Windows
            killed.append(pid)

    executor.on_started = on_started


def _kill_ray_worker_once(stop: threading.Event, killed: list[int]) -> None:
    """Kill the first Ray worker process seen running a colorize task."""
    while not stop.is_set() and not killed:
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if cmdline.startswith("ray::colorize_task"):
                process.kill()
                killed.append(process.info["pid"])
                return
        time.sleep(0.02)


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH_TEST_DELAY", "0.1")
    source = h.make_folder(tmp_path / "in", videos=8, frames=6)
    outdir = tmp_path / "out"
    killed: list[int] = []
    executor = make_executor(kind)
    if kind == "local":
        _kill_local_worker_once(executor, "2:video", killed)
        summary = batch(kind, source, outdir, executor)
        assert executor.retried == ["2:video"]
    else:
        stop = threading.Event()
        killer = threading.Thread(target=_kill_ray_worker_once, args=(stop, killed))
        killer.start()
        try:
            summary = batch(kind, source, outdir, executor)
        finally:
            stop.set()
            killer.join()
    assert killed, "no worker was killed"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == "zombie"
    counts = ok_counts(outdir)
    assert len(counts) == 8 and set(counts.values()) == {1}      # each video once
    assert len(h.lines(outdir)) == 8 and summary.count("ok") == 8
    for line in h.lines(outdir):
        assert len(h.decode(Path(line["output"]))) == 6
    assert [p.name for p in outdir.iterdir() if p.name.startswith(".")] == []


def test_one_corrupt_video_is_reported_and_the_others_are_done(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BATCH_TEST_DELAY", "0.01")
    source = h.make_folder(tmp_path / "in", videos=8, frames=6, corrupt=5)
    outdir = tmp_path / "out"
    plan = build_plan(source, outdir)
    code = run(plan, ResultsFile(outdir), FAKE, executor=make_executor(kind), quiet=True)
    assert code == 5
    lines = {Path(line["input"]).name: line for line in h.lines(outdir)}
    assert len(lines) == 8
    bad = lines.pop("clip_05.mp4")
    assert bad["status"] == "failed" and "clip_05.mp4" in bad["error"] and bad["exit_code"] in (10, 12)
    assert not (outdir / "clip_05.mp4").exists()
    assert all(line["status"] == "ok" for line in lines.values())
    out = capsys.readouterr()
    assert "7 done, 0 skipped (already done), 1 failed" in out.out
    assert "failed: " in out.err and "clip_05.mp4" in out.err
