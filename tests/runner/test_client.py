"""ComfyClient against the fake ComfyUI server: runs, finish states, races and faults."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
import requests

from fake_server import FakeComfyServer, FakeConfig
from runner import ComfyClient, FinishState, RetryPolicy
from runner.client import normalise_server, websocket_url
from runner.errors import PromptValidationError, ProtocolError, ServerUnreachableError
from runner.events import Cached, ConnectionNote, Event, Finished, NodeExecuted, NodeStarted, Preview, Progress, Started

DATA = Path(__file__).parent / "data"
FAST = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05)


def workflow() -> dict:
    return json.loads((DATA / "01_empty_invert_save.api.json").read_text())


def sampler_workflow(steps: int = 3) -> dict:
    """EmptyImage -> ColorTransfer-like progress node -> SaveImage, with a step count."""
    wf = workflow()
    wf["2"]["inputs"]["steps"] = steps  # ImageInvert with a steps input reports progress in the fake
    return wf


def client_for(server: FakeComfyServer, **kwargs) -> ComfyClient:
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5.0)
    return ComfyClient(server.url, **kwargs)


def run_collect(client: ComfyClient, wf: dict, **kwargs) -> tuple[list[Event], object]:
    events: list[Event] = []
    result = client.run(wf, on_event=events.append, **kwargs)
    return events, result


def test_successful_run_reports_nodes_progress_and_outputs(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.progress_steps = {"ImageInvert": 3}
    with client_for(comfy_server) as client:
        events, result = run_collect(client, workflow())
    assert result.state is FinishState.SUCCESS
    assert result.outputs["3"]["images"][0]["filename"] == "invert_00001_.png"
    assert any(isinstance(e, Started) for e in events)
    started = [(e.node_id, e.class_type, e.title) for e in events if isinstance(e, NodeStarted)]
    assert started == [("1", "EmptyImage", "Empty Image"), ("2", "ImageInvert", "Invert Image"), ("3", "SaveImage", "Save Image")]
    steps = [(e.node_id, e.value, e.max) for e in events if isinstance(e, Progress)]
    assert steps == [("2", 1, 3), ("2", 2, 3), ("2", 3, 3)]
    assert [e.node_id for e in events if isinstance(e, NodeExecuted)] == ["3"]
    assert isinstance(events[-1], Finished) and events[-1].state is FinishState.SUCCESS


def test_prompt_id_is_ours_and_sent_with_client_id(comfy_server: FakeComfyServer) -> None:
    with client_for(comfy_server) as client:
        own = str(uuid.uuid4())
        reply = client.submit(workflow(), prompt_id=own)
        assert reply.prompt_id == own
        assert client.wait(own, timeout=5).ok
    history = comfy_server.history[own]
    assert history["prompt"][3]["client_id"] == client.client_id


def test_cached_resubmission_lists_cached_nodes(comfy_server: FakeComfyServer) -> None:
    with client_for(comfy_server) as client:
        client.run(workflow())
        events, result = run_collect(client, workflow())
    cached = [e for e in events if isinstance(e, Cached)]
    assert cached and set(cached[0].nodes) == {"1", "2", "3"}
    assert result.ok and result.outputs["3"]["images"]  # cached output nodes still report outputs


def test_validation_error_lists_each_node_and_input(comfy_server: FakeComfyServer) -> None:
    wf = workflow()
    wf["1"]["inputs"]["width"] = 999999
    del wf["1"]["inputs"]["height"]
    with client_for(comfy_server) as client, pytest.raises(PromptValidationError) as caught:
        client.submit(wf)
    lines = caught.value.lines
    assert any("node 1" in line and "'width'" in line and "bigger than max" in line for line in lines)
    assert any("node 1" in line and "'height'" in line and "missing" in line for line in lines)
    assert comfy_server.queue_snapshot() == ([], [])


def test_unknown_node_type_is_a_validation_error(comfy_server: FakeComfyServer) -> None:
    wf = workflow()
    wf["2"]["class_type"] = "NoSuchNode"
    with client_for(comfy_server) as client, pytest.raises(PromptValidationError) as caught:
        client.submit(wf)
    assert "Invert Image" in caught.value.lines[0] and "not found" in caught.value.lines[0]


def test_execution_error_names_node_class_and_exception(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.fail = {"2": ("IndexError", "index 3 is out of bounds for dimension 3 with size 3\n")}
    with client_for(comfy_server) as client:
        result = client.run(workflow())
    assert result.state is FinishState.EXECUTION_ERROR
    assert "node 2 (ImageInvert 'Invert Image')" in result.message
    assert "IndexError: index 3 is out of bounds" in result.message
    assert result.error["exception_type"] == "IndexError"


def test_out_of_memory_is_its_own_state(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.fail = {"ImageInvert": ("torch.OutOfMemoryError", "Allocation on device 0 would exceed allowed memory. (out of memory)")}
    with client_for(comfy_server) as client:
        result = client.run(workflow())
    assert result.state is FinishState.OUT_OF_MEMORY


def test_interrupt_from_elsewhere_is_reported(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05
    with client_for(comfy_server) as client:
        prompt_id = client.submit(sampler_workflow(steps=200)).prompt_id
        assert comfy_server.wait_until(lambda: comfy_server.queue_snapshot()[0] == [prompt_id])
        requests.post(comfy_server.url + "/interrupt", json={}, timeout=5)
        result = client.wait(prompt_id, timeout=10)
    assert result.state is FinishState.INTERRUPTED
    assert "node 2 (ImageInvert)" in result.message


def test_timeout_interrupts_only_our_running_prompt(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05
    with client_for(comfy_server) as client:
        result = client.run(sampler_workflow(steps=400), timeout=0.5)
    assert result.state is FinishState.TIMED_OUT
    assert "running" in result.message
    assert comfy_server.wait_until(lambda: result.prompt_id in comfy_server.history)
    last = comfy_server.history[result.prompt_id]["status"]["messages"][-1]
    assert last[0] == "execution_interrupted"
    interrupts = [h for m, p, h in comfy_server.requests if p == "/interrupt"]
    assert len(interrupts) == 1


def test_timeout_of_a_pending_prompt_deletes_it_and_leaves_others(comfy_server: FakeComfyServer) -> None:
    comfy_server.set_paused(True)
    other = requests.post(comfy_server.url + "/prompt", json={"prompt": workflow()}, timeout=5).json()["prompt_id"]
    with client_for(comfy_server) as client:
        result = client.run(workflow(), timeout=0.3)
    assert result.state is FinishState.TIMED_OUT and "pending" in result.message
    assert comfy_server.queue_snapshot() == ([], [other])
    assert not any(p == "/interrupt" for _, p, _ in comfy_server.requests)


def test_history_written_after_completion_frames(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.history_delay = 0.3
    with client_for(comfy_server, poll_interval=5.0) as client:
        result = client.run(workflow(), timeout=10)
    assert result.ok and result.outputs


def test_frames_before_post_reply_are_not_lost(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.events_before_reply = True
    with client_for(comfy_server) as client:
        events, result = run_collect(client, workflow())
    assert result.ok
    assert any(isinstance(e, Started) for e in events)
    assert [e.node_id for e in events if isinstance(e, NodeStarted)] == ["1", "2", "3"]


def test_no_websocket_falls_back_to_polling(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.ws_accept = False
    with client_for(comfy_server) as client:
        events, result = run_collect(client, workflow(), timeout=10)
    assert result.ok and result.outputs
    assert any(isinstance(e, ConnectionNote) and e.state == "unavailable" for e in events)


def test_late_socket_that_never_sees_the_end(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.ws_mute = True
    with client_for(comfy_server) as client:
        result = client.run(workflow(), timeout=10)
    assert result.ok


def test_socket_dropped_mid_run_reconnects(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.02
    comfy_server.config.ws_drop_after = 3
    with client_for(comfy_server) as client:
        events, result = run_collect(client, sampler_workflow(steps=20), timeout=10)
    assert result.ok
    states = [e.state for e in events if isinstance(e, ConnectionNote)]
    assert "lost" in states and "reconnected" in states
    assert any(isinstance(e, Progress) and e.value > 10 for e in events)  # events resumed after reconnect


def test_prompt_deleted_by_someone_else_is_not_waited_for(comfy_server: FakeComfyServer) -> None:
    comfy_server.set_paused(True)
    with client_for(comfy_server) as client:
        prompt_id = client.submit(workflow()).prompt_id
        requests.post(comfy_server.url + "/queue", json={"delete": [prompt_id]}, timeout=5)
        result = client.wait(prompt_id, timeout=10)
    assert result.state is FinishState.INTERRUPTED and "disappeared" in result.message


def test_server_down_is_unreachable(dead_server_url: str) -> None:
    with ComfyClient(dead_server_url, retry=FAST, timeout=2) as client, pytest.raises(ServerUnreachableError) as caught:
        client.run(workflow(), timeout=5)
    assert dead_server_url in str(caught.value)


def test_5xx_is_retried_for_idempotent_requests(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/history", "500", times=2)
    comfy_server.add_fault("/object_info", "503", times=1)
    with client_for(comfy_server) as client:
        assert "SaveImage" in client.object_info()
        assert client.run(workflow()).ok


def test_retry_after_is_honoured(comfy_server: FakeComfyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.client.comfy as client_module  # the blocking transport sleeps there

    slept: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", lambda s: slept.append(s))
    comfy_server.add_fault("/queue", "503", retry_after=0.25, times=1)
    with client_for(comfy_server, retry=RetryPolicy(retries=2, base_delay=30, max_delay=60)) as client:
        assert "queue_running" in client.queue()
    assert slept == [0.25]


def test_backoff_grows_and_is_jittered() -> None:
    policy = RetryPolicy(retries=5, base_delay=1.0, max_delay=8.0)
    delays = [policy.delay(n) for n in range(5)]
    for n, delay in enumerate(delays):
        cap = min(8.0, 2.0**n)
        assert cap / 2 <= delay <= cap


def test_persistent_5xx_gives_protocol_error(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/object_info", "500", times=-1)
    with client_for(comfy_server) as client, pytest.raises(ProtocolError) as caught:
        client.object_info()
    assert "500" in str(caught.value)


def test_malformed_json_once_is_retried_always_is_an_error(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/queue", "malformed", times=1)
    with client_for(comfy_server) as client:
        assert "queue_pending" in client.queue()
        comfy_server.add_fault("/system_stats", "malformed", times=-1)
        with pytest.raises(ProtocolError, match="malformed JSON"):
            client.system_stats()


def test_lost_prompt_reply_does_not_queue_twice(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/prompt", "drop_after", method="POST", times=1)
    with client_for(comfy_server) as client:
        result = client.run(workflow(), timeout=10)
    assert result.ok
    assert comfy_server.posted_prompt_ids() == [result.prompt_id]  # one POST: the retry found it queued
    assert comfy_server.executed_prompts == [result.prompt_id]


def test_prompt_post_500_is_retried_once_queued(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/prompt", "500", method="POST", times=1)
    with client_for(comfy_server) as client:
        result = client.run(workflow(), timeout=10)
    assert result.ok and comfy_server.executed_prompts == [result.prompt_id]
    assert [p for m, p, _ in comfy_server.requests if m == "POST"].count("/prompt") == 2
    assert comfy_server.posted_prompt_ids() == [result.prompt_id]  # the 500 was answered before queueing


def test_token_is_sent_on_http_and_websocket_and_hidden(make_comfy_server) -> None:
    server = make_comfy_server(FakeConfig(require_token="s3cret"))
    with ComfyClient(server.url, "s3cret", poll_interval=0.05, retry=FAST) as client:
        events, result = run_collect(client, workflow())
        assert "s3cret" not in repr(client)
    assert result.ok
    assert not any(isinstance(e, ConnectionNote) for e in events)  # the websocket was accepted
    assert all(h.get("Authorization") == "Bearer s3cret" for _, _, h in server.requests)
    with ComfyClient(server.url, "wrong", retry=FAST) as client, pytest.raises(ProtocolError, match="401"):
        client.queue()


def test_upload_renames_on_collision(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    first = tmp_path / "a" / "photo.png"
    second = tmp_path / "b" / "photo.png"
    for path, data in ((first, b"one"), (second, b"two")):
        path.parent.mkdir()
        path.write_bytes(data)
    with client_for(comfy_server) as client:
        assert client.upload_image(first) == "photo.png"
        assert client.upload_image(first) == "photo.png"  # identical bytes: same name
        assert client.upload_image(second) == "photo (1).png"
        assert client.upload_image(second, subfolder="sub") == "sub/photo.png"
    assert first.read_bytes() == b"one"


def test_binary_preview_frames_become_events(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.preview_frames = True
    with client_for(comfy_server) as client:
        events, result = run_collect(client, sampler_workflow(steps=2))
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 2 and previews[0].node_id == "2" and previews[0].data.startswith(b"\x89PNG")


def test_frames_of_other_prompts_are_kept_for_later(comfy_server: FakeComfyServer) -> None:
    with client_for(comfy_server) as client:
        first = client.submit(workflow()).prompt_id
        second_wf = workflow()
        second_wf["3"]["inputs"]["filename_prefix"] = "demo/other"
        second = client.submit(second_wf).prompt_id
        assert client.wait(second, timeout=5).ok  # frames of `first` arrive meanwhile
        events: list[Event] = []
        assert client.wait(first, timeout=5, on_event=events.append).ok
    assert any(isinstance(e, Started) for e in events)


def test_models_and_server_url_helpers(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.models = {"checkpoints": ["sd_xl_base_1.0.safetensors"]}
    with client_for(comfy_server) as client:
        assert client.models("checkpoints") == ["sd_xl_base_1.0.safetensors"]
        assert client.models("no_such_folder") == []
    assert normalise_server("127.0.0.1:8188") == "http://127.0.0.1:8188"
    assert normalise_server("https://h.example/comfy/") == "https://h.example/comfy"
    assert websocket_url("https://h.example/comfy", "abc") == "wss://h.example/comfy/ws?clientId=abc"
    with pytest.raises(ValueError):
        normalise_server("ftp://x")


def test_cancel_from_another_thread_while_waiting(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05
    with client_for(comfy_server) as client, client_for(comfy_server) as other:
        prompt_id = client.submit(sampler_workflow(steps=200)).prompt_id
        assert comfy_server.wait_until(lambda: comfy_server.queue_snapshot()[0] == [prompt_id])
        threading.Timer(0.1, lambda: other.cancel(prompt_id)).start()
        result = client.wait(prompt_id, timeout=10)
    assert result.state is FinishState.INTERRUPTED
