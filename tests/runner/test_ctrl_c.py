"""Ctrl-C at any moment from the POST to the end of a run cancels our prompt and exits 130.

Each case starts ``comfy-run`` in a child process against the fake server, sends SIGINT at one
point of the run, and checks the exit code and that our prompt never ran to its end (it was
deleted from the queue, or interrupted). The POST case is deterministic: the fake server holds the
POST for a second after reading it, so the signal lands while the client waits for the reply and
before the server has queued anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from fake_server import FakeComfyServer

# Windows has no SIGINT to send to one process: Popen.send_signal accepts only CTRL_C_EVENT and
# CTRL_BREAK_EVENT, and CTRL_C_EVENT reaches every process on the console, pytest included.
# The handler under test is the same code there (Ctrl-C raises SIGINT in Python on Windows too).
pytestmark = pytest.mark.skipif(sys.platform == "win32",
                                reason="a single child cannot be sent SIGINT on Windows")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]
POST_HOLD = 1.0  # seconds the fake server sits on the POST in the "during the POST" case


class CliRun:
    """``comfy-run SLOW.json`` in a child process; stderr is read as it comes."""

    def __init__(self, server: FakeComfyServer, tmp_path: Path) -> None:
        workflow = json.loads((DATA / "01_empty_invert_save.api.json").read_text())
        workflow["2"]["inputs"]["steps"] = 400  # 400 progress steps of step_delay each
        path = tmp_path / "slow.json"
        path.write_text(json.dumps(workflow))
        env = dict(os.environ, COMFYUI_API_URL=server.url, COMFYUI_POLL_INTERVAL="0.05", PYTHONPATH=str(REPO))
        env.pop("COMFYUI_TIMEOUT", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "runner.cli", str(path), "--out", str(tmp_path / "o")],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def interrupt_and_wait(self, timeout: float = 20) -> int:
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
            self.seconds_to_exit = time.monotonic() - sent
            return code
        finally:
            self.proc.kill()
            self._reader.join(timeout=5)


def _posted(server: FakeComfyServer) -> bool:
    return any(method == "POST" and path == "/prompt" for method, path, _ in list(server.requests))


def _running(server: FakeComfyServer) -> bool:
    return bool(server.queue_snapshot()[0])


def _pending(server: FakeComfyServer) -> bool:
    return bool(server.queue_snapshot()[1])


def _after(seconds: float) -> Callable[[FakeComfyServer], bool]:
    started: list[float] = []

    def ready(server: FakeComfyServer) -> bool:
        if not _running(server):
            return False
        started.append(time.monotonic()) if not started else None
        return time.monotonic() - started[0] >= seconds

    return ready


CASES = {
    "during the POST": _posted,
    "while pending in the queue": _pending,
    "as it starts running": _running,
    "after 0.1 s of running": _after(0.1),
    "after 0.5 s of running": _after(0.5),
    "after 1.5 s of running": _after(1.5),
}


def assert_cancelled(server: FakeComfyServer, returncode: int, run: CliRun) -> None:
    stderr = "".join(run.lines)
    assert returncode == 130, stderr
    assert "cancelled" in stderr and "Traceback" not in stderr, stderr
    # Our prompt never runs to its end: it was deleted before it started, or interrupted.
    time.sleep(POST_HOLD + 0.3)  # past any POST the server still sat on
    prompt_id = server.posted_prompt_ids()[0]
    assert server.wait_until(lambda: server.queue_snapshot() == ([], []), timeout=10)
    entry = server.history.get(prompt_id)
    assert entry is None or entry["status"]["messages"][-1][0] == "execution_interrupted", entry["status"]


def interrupt_at(server: FakeComfyServer, moment: str, folder: Path, timeout: float = 20) -> tuple[int, CliRun]:
    """Start comfy-run, send SIGINT at ``moment`` (a key of CASES); returns its exit code and the run."""
    server.config.step_delay = 0.05
    if moment == "during the POST":
        server.add_fault("/prompt", "delay", method="POST", delay=POST_HOLD)
    if moment == "while pending in the queue":
        server.set_paused(True)
    run = CliRun(server, folder)
    ready = CASES[moment]
    assert server.wait_until(lambda: ready(server), timeout=timeout), f"the run never reached {moment!r}"
    code = run.interrupt_and_wait(timeout=timeout)
    server.set_paused(False)
    return code, run


@pytest.mark.parametrize("moment", list(CASES))
def test_ctrl_c_at_any_moment_cancels_our_prompt(comfy_server: FakeComfyServer, tmp_path: Path, moment: str) -> None:
    code, run = interrupt_at(comfy_server, moment, tmp_path)
    assert_cancelled(comfy_server, code, run)


def test_ctrl_c_right_after_queued_line(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    """Between the POST reply and the wait loop (the 'queued prompt' line is printed there)."""
    comfy_server.config.step_delay = 0.05
    run = CliRun(comfy_server, tmp_path)
    assert comfy_server.wait_until(lambda: run.said("queued prompt"), timeout=20)
    code = run.interrupt_and_wait()
    assert_cancelled(comfy_server, code, run)
