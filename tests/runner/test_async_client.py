"""AsyncComfyClient against the fake ComfyUI server, mirroring the blocking client's tests
(tests/runner/test_client.py): the same events, races and faults, plus task cancellation and many
runs on one event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
import requests

from fake_server import FakeComfyServer
from runner import AsyncComfyClient, FinishState, RetryPolicy
from runner.errors import PromptValidationError, ServerUnreachableError
from runner.events import Cached, ConnectionNote, Event, Finished, NodeExecuted, NodeStarted, Progress, Queued, Started

DATA = Path(__file__).parent / "data"
FAST = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05)


def workflow(steps: int | None = None) -> dict:
    wf = json.loads((DATA / "01_empty_invert_save.api.json").read_text())
    if steps is not None:
        wf["2"]["inputs"]["steps"] = steps  # the fake's ImageInvert reports that many progress steps
    return wf


def with_client(server: FakeComfyServer, body: Callable[[AsyncComfyClient], Awaitable[Any]], **kwargs: Any) -> Any:
    """Run ``body(client)`` in a fresh event loop with a fast-retrying client of ``server``."""
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5.0)

    async def main() -> Any:
        async with AsyncComfyClient(server.url, **kwargs) as client:
            return await body(client)

    return asyncio.run(main())


def run_collect(server: FakeComfyServer, wf: dict, **kwargs: Any) -> tuple[list[Event], Any]:
    events: list[Event] = []

    async def body(client: AsyncComfyClient) -> Any:
        return await client.run(wf, on_event=events.append, timeout=10)

    return events, with_client(server, body, **kwargs)


def test_events_arrive_in_order(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.progress_steps = {"ImageInvert": 3}
    events, result = run_collect(comfy_server, workflow())
    assert result.state is FinishState.SUCCESS
    kinds = [type(e) for e in events if not isinstance(e, (Progress, NodeExecuted, Cached))]
    assert kinds == [Queued, Started, NodeStarted, NodeStarted, NodeStarted, Finished]
    assert [e.node_id for e in events if isinstance(e, NodeStarted)] == ["1", "2", "3"]
    assert [(e.node_id, e.value) for e in events if isinstance(e, Progress)] == [("2", 1), ("2", 2), ("2", 3)]
    assert events.index(next(e for e in events if isinstance(e, NodeExecuted))) > 3
    assert result.outputs["3"]["images"][0]["filename"] == "invert_00001_.png"


def test_watch_is_an_async_iterator_of_the_same_events(comfy_server: FakeComfyServer) -> None:
    async def body(client: AsyncComfyClient) -> list[Event]:
        own = str(uuid.uuid4())
        assert (await client.submit(workflow(), prompt_id=own)).prompt_id == own
        return [event async for event in client.watch(own, timeout=10)]

    events = with_client(comfy_server, body)
    assert isinstance(events[-1], Finished) and events[-1].state is FinishState.SUCCESS
    assert any(isinstance(e, Started) for e in events)


def test_completion_announced_before_history_is_written(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.history_delay = 0.3
    _, result = run_collect(comfy_server, workflow(), poll_interval=5.0)
    assert result.ok and result.outputs


def test_frames_before_the_post_reply_are_not_lost(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.events_before_reply = True
    events, result = run_collect(comfy_server, workflow())
    assert result.ok and [e.node_id for e in events if isinstance(e, NodeStarted)] == ["1", "2", "3"]


def test_socket_loss_falls_back_to_history_and_reconnects(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.02
    comfy_server.config.ws_drop_after = 3
    events, result = run_collect(comfy_server, workflow(steps=20))
    assert result.ok
    states = [e.state for e in events if isinstance(e, ConnectionNote)]
    assert "lost" in states and "reconnected" in states
    assert any(isinstance(e, Progress) and e.value > 10 for e in events)


def test_no_websocket_polls_history(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.ws_accept = False
    events, result = run_collect(comfy_server, workflow())
    assert result.ok and result.outputs
    assert any(isinstance(e, ConnectionNote) and e.state == "unavailable" for e in events)


def test_mute_socket_still_finishes_from_history(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.ws_mute = True
    _, result = run_collect(comfy_server, workflow())
    assert result.ok


def test_lost_post_reply_is_retried_without_a_duplicate(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/prompt", "drop_after", method="POST", times=1)
    _, result = run_collect(comfy_server, workflow())
    assert result.ok
    assert comfy_server.posted_prompt_ids() == [result.prompt_id]  # one POST: the retry found it queued
    assert comfy_server.executed_prompts == [result.prompt_id]


def test_5xx_is_retried(comfy_server: FakeComfyServer) -> None:
    comfy_server.add_fault("/history", "500", times=2)
    comfy_server.add_fault("/object_info", "503", times=1)

    async def body(client: AsyncComfyClient) -> Any:
        assert "SaveImage" in await client.object_info()
        return await client.run(workflow(), timeout=10)

    assert with_client(comfy_server, body).ok


def test_validation_error_queues_nothing(comfy_server: FakeComfyServer) -> None:
    wf = workflow()
    wf["1"]["inputs"]["width"] = 999999

    async def body(client: AsyncComfyClient) -> None:
        await client.submit(wf)

    with pytest.raises(PromptValidationError) as caught:
        with_client(comfy_server, body)
    assert any("'width'" in line and "bigger than max" in line for line in caught.value.lines)
    assert comfy_server.queue_snapshot() == ([], [])


def test_execution_error_is_reported(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.fail = {"2": ("RuntimeError", "boom")}
    _, result = run_collect(comfy_server, workflow())
    assert result.state is FinishState.EXECUTION_ERROR and "node 2 (ImageInvert 'Invert Image')" in result.message


def test_server_down_is_unreachable(dead_server_url: str) -> None:
    async def main() -> None:
        async with AsyncComfyClient(dead_server_url, retry=FAST, timeout=2) as client:
            await client.run(workflow(), timeout=5)

    with pytest.raises(ServerUnreachableError, match="cannot reach ComfyUI"):
        asyncio.run(main())


def test_timeout_cancels_only_our_prompt(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05
    comfy_server.set_paused(True)
    other = requests.post(comfy_server.url + "/prompt", json={"prompt": workflow(steps=1)}, timeout=5).json()["prompt_id"]

    async def body(client: AsyncComfyClient) -> Any:
        comfy_server.set_paused(False)
        return await client.run(workflow(steps=400), timeout=1.0)

    result = with_client(comfy_server, body)
    assert result.state is FinishState.TIMED_OUT
    assert comfy_server.wait_until(lambda: result.prompt_id in comfy_server.history)
    assert comfy_server.history[result.prompt_id]["status"]["messages"][-1][0] == "execution_interrupted"
    assert comfy_server.history[other]["status"]["status_str"] == "success"  # the other prompt ran to its end
    interrupts = [h for m, p, h in comfy_server.requests if p == "/interrupt"]
    assert len(interrupts) == 1


def test_cancelling_the_task_cancels_our_running_prompt(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05

    async def body(client: AsyncComfyClient) -> tuple[str, bool]:
        own = str(uuid.uuid4())
        task = asyncio.ensure_future(client.run(workflow(steps=400), prompt_id=own))
        while comfy_server.queue_snapshot()[0] != [own]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return own, task.cancelled()

    own, cancelled = with_client(comfy_server, body)
    assert cancelled
    assert comfy_server.wait_until(lambda: own in comfy_server.history)
    assert comfy_server.history[own]["status"]["messages"][-1][0] == "execution_interrupted"


def test_a_task_cancelled_during_the_post_still_cancels_the_prompt(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05
    comfy_server.add_fault("/prompt", "delay", method="POST", delay=0.5)  # the server sits on the POST

    async def body(client: AsyncComfyClient) -> str:
        own = str(uuid.uuid4())
        task = asyncio.ensure_future(client.run(workflow(steps=400), prompt_id=own))
        while not any(m == "POST" and p == "/prompt" for m, p, _ in list(comfy_server.requests)):
            await asyncio.sleep(0.01)
        task.cancel()  # before the server has queued anything
        with pytest.raises(asyncio.CancelledError):
            await task
        return own

    own = with_client(comfy_server, body)  # leaving the client waits for the cancel behind the task
    assert comfy_server.posted_prompt_ids() == [own]
    assert comfy_server.wait_until(lambda: comfy_server.queue_snapshot() == ([], []), timeout=5)
    entry = comfy_server.history.get(own)
    assert entry is None or entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_wait_for_timeout_cancels_a_pending_prompt_and_leaves_others(comfy_server: FakeComfyServer) -> None:
    comfy_server.set_paused(True)
    other = requests.post(comfy_server.url + "/prompt", json={"prompt": workflow()}, timeout=5).json()["prompt_id"]

    async def body(client: AsyncComfyClient) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.run(workflow()), timeout=0.5)

    with_client(comfy_server, body)
    assert comfy_server.queue_snapshot() == ([], [other])
    assert not any(p == "/interrupt" for _, p, _ in comfy_server.requests)


def test_request_cancel_from_another_thread(comfy_server: FakeComfyServer) -> None:
    comfy_server.config.step_delay = 0.05

    async def body(client: AsyncComfyClient) -> Any:
        threading.Timer(0.3, client.request_cancel).start()
        return await client.run(workflow(steps=400), timeout=10)

    result = with_client(comfy_server, body)
    assert result.state is FinishState.CANCELLED
    assert comfy_server.wait_until(lambda: result.prompt_id in comfy_server.history)


def test_outputs_downloaded_and_inputs_uploaded(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"one")

    async def body(client: AsyncComfyClient) -> Any:
        assert await client.upload_image(photo) == "photo.png"
        assert await client.upload_image(photo, subfolder="sub") == "sub/photo.png"
        result = await client.run(workflow(), timeout=10)
        return await client.download_outputs(result, tmp_path / "out")

    manifest = with_client(comfy_server, body)
    saved = tmp_path / "out" / manifest.outputs[0]["path"]
    assert saved.read_bytes() == comfy_server.files[("output", "demo", "invert_00001_.png")]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["outputs"][0]["sha256"] == manifest.outputs[0]["sha256"]
    assert comfy_server.files[("input", "", "photo.png")] == b"one"


def test_token_is_sent_and_hidden(make_comfy_server) -> None:
    from fake_server import FakeConfig

    server = make_comfy_server(FakeConfig(require_token="s3cret"))
    events, result = run_collect(server, workflow(), token="s3cret")
    assert result.ok and not any(isinstance(e, ConnectionNote) for e in events)
    assert all(h.get("Authorization") == "Bearer s3cret" for _, _, h in server.requests)
    assert "s3cret" not in repr(AsyncComfyClient(server.url, "s3cret"))




def test_100_concurrent_runs_on_one_loop_start_no_thread() -> None:
    # The server runs in another process, so that its handler threads do not count here.
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_server.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        threads: list[int] = []

        async def main() -> list[Any]:
            async with AsyncComfyClient(url, poll_interval=2.0, retry=FAST, timeout=30) as client:
                await client.system_stats()  # the pool and the loop are warm: count from here
                threads.append(threading.active_count())

                async def one(index: int) -> Any:
                    wf = workflow()
                    wf["1"]["inputs"]["color"] = index  # every prompt executes (no cache)
                    result = await client.run(wf, timeout=120)
                    threads.append(threading.active_count())
                    return result

                return await asyncio.gather(*(one(index) for index in range(100)))

        results = asyncio.run(main())
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    assert all(result.ok for result in results)
    assert len({result.prompt_id for result in results}) == 100
    assert max(threads) == threads[0], f"threads grew from {threads[0]} to {max(threads)}"


def test_the_blocking_client_does_not_load_the_async_stack() -> None:
    import subprocess
    import sys

    code = ("import sys, runner; from runner import ComfyClient; "
            "print(sorted(m for m in ('httpx2', 'websockets.asyncio.client', 'runner.client.aio') if m in sys.modules)); "
            "print(runner.AsyncComfyClient.__name__, runner.client.AsyncComfyClient is runner.AsyncComfyClient)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "AsyncComfyClient True"]


@pytest.mark.parametrize("blocking", [True, False], ids=["ComfyClient", "AsyncComfyClient"])
def test_a_download_cut_off_mid_body_is_fetched_again(comfy_server: FakeComfyServer, tmp_path: Path,
                                                      blocking: bool) -> None:
    from runner import ComfyClient

    comfy_server.add_fault("/view", "truncate", times=1)
    out = tmp_path / "out"
    if blocking:
        with ComfyClient(comfy_server.url, poll_interval=0.05, retry=FAST) as client:
            manifest = client.download_outputs(client.run(workflow(), timeout=10), out)
    else:
        async def body(client: AsyncComfyClient) -> Any:
            return await client.download_outputs(await client.run(workflow(), timeout=10), out)

        manifest = with_client(comfy_server, body)
    saved = out / manifest.outputs[0]["path"]
    assert saved.read_bytes() == comfy_server.files[("output", "demo", "invert_00001_.png")]
    assert [m for m, p, _ in comfy_server.requests if p == "/view"] == ["GET", "GET"]  # the cut one, then whole
    assert sorted(p.name for p in out.iterdir()) == sorted([saved.name, "manifest.json"])  # no .part left


@pytest.mark.parametrize("blocking", [True, False], ids=["ComfyClient", "AsyncComfyClient"])
def test_a_cancel_asked_before_the_post_queues_nothing(comfy_server: FakeComfyServer, blocking: bool) -> None:
    from runner import ComfyClient

    if blocking:
        with ComfyClient(comfy_server.url, poll_interval=0.05, retry=FAST) as client:
            client.request_cancel()
            result = client.run(workflow(), timeout=10)
    else:
        async def body(client: AsyncComfyClient) -> Any:
            client.request_cancel()
            return await client.run(workflow(), timeout=10)

        result = with_client(comfy_server, body)
    assert result.state is FinishState.CANCELLED
    assert comfy_server.posted_prompt_ids() == [] and comfy_server.executed_prompts == []
