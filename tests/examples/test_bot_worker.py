"""examples/bot_worker.py against the ComfyUI stand-in: decisions per failure kind, cancel by job id,
progress forwarded, and no job run twice across a worker killed mid-queue."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from bot_worker import BotWorker, JobQueue, WorkerSettings

from runner import AsyncComfyClient, RetryPolicy
from runner.events import Progress

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST_RETRY = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.02)


async def _work(queue: JobQueue, url: str, registry, out: Path, cancel: str | None = None,
                max_attempts: int = 3) -> tuple[list, list]:
    outcomes, progress = [], []

    def on_progress(job, event):
        progress.append((job.id, event))
        if job.id == cancel and isinstance(event, Progress) and event.value >= 3:
            queue.request_cancel(job.id)  # the user's /cancel arrives while it runs

    async with AsyncComfyClient(url, retry=FAST_RETRY, timeout=5.0) as client:
        worker = BotWorker(queue, client, out, registry=registry, on_progress=on_progress,
                           on_finished=outcomes.append,
                           settings=WorkerSettings(poll_s=0.05, retry_delay_s=0.0, max_attempts=max_attempts))
        await asyncio.wait_for(worker.run(until_empty=True), timeout=60)
    return outcomes, progress


def test_each_failure_ends_in_the_right_decision(tmp_path, comfy_server, test_registry):
    queue = JobQueue(tmp_path / "jobs.sqlite")
    ok = queue.add("u1", "solid", {"size": 32})
    node_error = queue.add("u2", "blur", {})
    oom = queue.add("u3", "sharpen", {})
    rejected = queue.add("u4", "solid", {"size": 0})
    cancelled = queue.add("u5", "slow", {})
    waiting = queue.add("u6", "solid", {})
    assert queue.request_cancel(waiting)          # cancelled before any worker took it
    timed_out = queue.add("u7", "slow", {}, timeout=0.5)
    last = queue.add("u8", "solid", {"size": 8})

    outcomes, progress = asyncio.run(_work(queue, comfy_server.url, test_registry, tmp_path / "out",
                                           cancel=cancelled, max_attempts=2))

    jobs = {job["id"]: job for job in queue.all()}
    assert jobs[ok]["state"] == "done" and jobs[ok]["decision"] is None
    assert len(jobs[ok]["outputs"]) == 1 and Path(jobs[ok]["outputs"][0]).is_file()
    assert jobs[last]["state"] == "done"
    expected = {
        node_error: ("refund", "node_error"),
        oom: ("refund", "out_of_memory"),          # retried once, then given up
        rejected: ("refund", "rejected"),
        cancelled: ("refund", "cancelled"),
        waiting: ("refund", "cancelled"),
        timed_out: ("refund", "timeout"),
    }
    for job_id, (decision, kind) in expected.items():
        assert (jobs[job_id]["state"], jobs[job_id]["decision"], jobs[job_id]["kind"]) == ("failed", decision, kind)
    assert "blur exploded" in jobs[node_error]["message"]
    assert jobs[rejected]["message"] == "--param size: 0 is below the minimum 1"  # the CLI's words
    assert jobs[oom]["attempts"] == 2 and "gave up after 2 attempts" in jobs[oom]["message"]

    by_job = {}
    for outcome in outcomes:
        by_job.setdefault(outcome.job_id, []).append((outcome.status, outcome.decision))
    assert by_job[oom] == [("retrying", "retry"), ("failed", "refund")]
    assert waiting not in by_job                    # no worker ever ran it
    assert by_job[ok] == [("done", None)]

    steps = [event.value for job_id, event in progress if job_id == cancelled and isinstance(event, Progress)]
    assert 3 <= len(steps) < 200                     # progress forwarded, and the run stopped early
    # Only the cancelled and the timed-out prompts were interrupted; the rest of the queue ran on.
    interrupted = [pid for pid, entry in comfy_server.history.items()
                   if any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])]
    assert sorted(interrupted) == sorted([jobs[cancelled]["prompt_id"], jobs[timed_out]["prompt_id"]])
    assert rejected not in [job_id for job_id, _ in progress]  # refused before anything was queued


def test_an_unreachable_server_is_retried_then_refunded(tmp_path, dead_server_url, test_registry):
    queue = JobQueue(tmp_path / "jobs.sqlite")
    job_id = queue.add("u1", "solid", {})
    outcomes, _ = asyncio.run(_work(queue, dead_server_url, test_registry, tmp_path / "out", max_attempts=2))
    assert [(o.status, o.decision, o.kind) for o in outcomes] == [
        ("retrying", "retry", "unreachable"), ("failed", "refund", "unreachable")]
    assert queue.get(job_id)["state"] == "failed"


def _start_worker(db: Path, url: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / "bot_worker.py"), "--db", str(db), "run", "--server", url,
         "--out", str(out), "--until-empty", "--lease", "1", "--poll", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_worker_killed_mid_queue_and_restarted_runs_each_job_once(tmp_path, comfy_server):
    comfy_server.config.node_delay = 0.15
    db = tmp_path / "jobs.sqlite"
    queue = JobQueue(db)
    job_ids = [queue.add(f"u{i}", "solid-invert", {"size": 16 + i}) for i in range(5)]

    first = _start_worker(db, comfy_server.url, tmp_path / "out")
    try:
        def mid_queue() -> bool:
            states = [job["state"] for job in queue.all()]
            running = [job for job in queue.all() if job["state"] == "running"]
            return (states.count("done") >= 1 and len(running) == 1
                    and running[0]["prompt_id"] in comfy_server.posted_prompt_ids())
        assert comfy_server.wait_until(mid_queue, timeout=60), first.stderr.read() if first.poll() else ""
        first.kill()       # SIGKILL (TerminateProcess on Windows): a prompt on the server, jobs waiting
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    done_before = sum(job["state"] == "done" for job in queue.all())
    assert done_before < len(job_ids)

    second = _start_worker(db, comfy_server.url, tmp_path / "out")
    _, errors = second.communicate(timeout=90)
    assert second.returncode == 0, errors
    assert "found on the server; waiting for it" in errors   # the orphan was taken over, not re-run

    jobs = queue.all()
    assert [job["state"] for job in jobs] == ["done"] * len(job_ids)
    posted = comfy_server.posted_prompt_ids()
    assert sorted(posted) == sorted(job["prompt_id"] for job in jobs)  # one prompt per job, posted once
    assert set(comfy_server.history) == set(posted)                    # each ran once
    assert all(job["attempts"] == 1 for job in jobs)


def test_example_command_line_adds_shows_and_cancels(tmp_path):
    db = tmp_path / "jobs.sqlite"
    script = [sys.executable, str(EXAMPLES / "bot_worker.py"), "--db", str(db)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    job_id = subprocess.run([*script, "add", "7", "solid-invert", "size=32"], capture_output=True,
                            text=True, check=True, env=env).stdout.strip()
    shown = subprocess.run([*script, "show", job_id], capture_output=True, text=True, check=True, env=env)
    assert '"params": {"size": 32}' in shown.stdout and '"state": "queued"' in shown.stdout
    subprocess.run([*script, "cancel", job_id], check=True, env=env)
    assert JobQueue(db).get(job_id)["kind"] == "cancelled"
    again = subprocess.run([*script, "cancel", job_id], capture_output=True, text=True, env=env)
    assert again.returncode == 1 and "no running or queued job" in again.stderr
