"""``ComfyClient.request_cancel``: a cancel asked from another thread (or a signal handler) stops
the wait at its next loop turn and cancels only our prompt on the server."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from fake_server import FakeComfyServer
from runner import ComfyClient
from runner.events import FinishState

DATA = Path(__file__).resolve().parent / "data"
WORKFLOW = DATA / "01_empty_invert_save.api.json"


def test_request_cancel_from_another_thread(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05
    workflow = json.loads(WORKFLOW.read_text())
    workflow["2"]["inputs"]["steps"] = 400          # about 20 s if nobody cancels
    with ComfyClient(comfy_server.url, poll_interval=0.05) as client:
        submitted = client.submit(workflow)
        assert comfy_server.wait_until(lambda: bool(comfy_server.queue_snapshot()[0]), timeout=20)
        timer = threading.Timer(0.2, client.request_cancel)
        timer.start()
        result = client.wait(submitted.prompt_id, timeout=15)
        timer.join()
    assert result.state is FinishState.CANCELLED
    prompt_id = submitted.prompt_id
    assert comfy_server.wait_until(lambda: prompt_id in comfy_server.history, timeout=10)
    assert comfy_server.history[prompt_id]["status"]["messages"][-1][0] == "execution_interrupted"
