"""The protocol core without any I/O: its steps driven by a scripted transport.

Timing races that a real socket makes rare are laid out here exactly, e.g. history already
written while the run's frames still wait unread on the socket.
"""

from __future__ import annotations

import json
from typing import Any

from runner.client.actions import Receive, Reply, Send, Sleep, Unreachable
from runner.client.drive import run_steps, stream_steps
from runner.client.protocol import DRAIN_SECONDS, ComfyProtocol
from runner.client.retry import RetryPolicy
from runner.events import Cached, Finished, FinishState, NodeStarted

PID = "0e9d5b36-8a3c-4c8b-9a36-6c0f3d1b2f11"
ENTRY = {"prompt": [1, PID, {}, {}, []], "outputs": {},
         "status": {"status_str": "success", "completed": True, "messages": [["execution_success", {"prompt_id": PID}]]}}


def frame(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": {"prompt_id": PID, **data}})


class ScriptedServer:
    """Answers Send actions from ``routes`` (path -> reply body or callable) and Receive actions
    from ``frames`` (a list consumed in order; None means nothing within the timeout)."""

    def __init__(self, protocol: ComfyProtocol, routes: dict[str, Any], frames: list[Any]) -> None:
        self.protocol = protocol
        self.routes = routes
        self.frames = list(frames)
        self.log: list[str] = []

    def perform(self, action: Any) -> Any:
        if isinstance(action, Send):
            self.log.append(f"{action.method} {action.path}")
            body = self.routes[action.path]
            body = body() if callable(body) else body
            if isinstance(body, Unreachable):
                return body
            return Reply(200, "OK", {}, json.dumps(body).encode())
        if isinstance(action, Receive):
            self.log.append("receive")
            raw = self.frames.pop(0) if self.frames else None
            message = None if raw is None else self.protocol.route(raw, (action.prompt_id,))[0]
            return message, None
        if isinstance(action, Sleep):
            return None
        raise AssertionError(action)


def watch(protocol: ComfyProtocol, server: ScriptedServer) -> list[Any]:
    return list(stream_steps(protocol.watch(PID, timeout=30), server.perform))


def test_frames_still_unread_when_history_is_written_are_not_lost() -> None:
    protocol = ComfyProtocol("http://comfy", poll_interval=0.0)  # history is polled at once
    server = ScriptedServer(protocol, {f"/history/{PID}": {PID: ENTRY}}, [
        frame("execution_start"), frame("execution_cached", nodes=["1"]), frame("executing", node="2"),
        frame("execution_success"), frame("executing", node=None),
    ])
    events = watch(protocol, server)
    assert [isinstance(e, Finished) for e in events] == [False] * (len(events) - 1) + [True]
    assert any(isinstance(e, Cached) and e.nodes == ["1"] for e in events)
    assert [e.node_id for e in events if isinstance(e, NodeStarted)] == ["2"]
    assert events[-1].state is FinishState.SUCCESS
    assert server.log[0] == f"GET /history/{PID}" and server.frames == []  # drained after history said done


def test_a_watch_after_the_run_ended_does_not_wait_for_frames() -> None:
    protocol = ComfyProtocol("http://comfy", poll_interval=0.0)
    server = ScriptedServer(protocol, {f"/history/{PID}": {PID: ENTRY}}, [])
    events = watch(protocol, server)
    assert isinstance(events[-1], Finished) and server.log.count("receive") == 1  # one quiet look


def test_the_drain_gives_up_on_a_socket_that_stays_silent(monkeypatch) -> None:
    import runner.client.protocol as core

    clock = [1000.0]
    monkeypatch.setattr(core.time, "monotonic", lambda: clock[0])
    protocol = ComfyProtocol("http://comfy", poll_interval=0.0)
    server = ScriptedServer(protocol, {f"/history/{PID}": {PID: ENTRY}}, [frame("execution_start")])
    waited: list[float] = []
    perform = server.perform

    def silent_then(action: Any) -> Any:
        if isinstance(action, Receive) and not server.frames:
            waited.append(action.timeout)
            clock[0] += action.timeout  # nothing came within the timeout
        return perform(action)

    events = list(stream_steps(protocol.watch(PID, timeout=30), silent_then))
    assert isinstance(events[-1], Finished) and events[-1].state is FinishState.SUCCESS
    assert abs(sum(waited) - DRAIN_SECONDS) < 1e-9  # waited for the final frame, then gave up


def test_a_retried_post_that_was_queued_is_not_posted_again() -> None:
    protocol = ComfyProtocol("http://comfy", retry=RetryPolicy(retries=2, base_delay=0.0, max_delay=0.0),
                             use_websocket=False)
    answers = iter([Unreachable("ConnectionResetError")])  # the POST's reply is lost...
    server = ScriptedServer(protocol, {
        "/prompt": lambda: next(answers),
        "/queue": {"queue_running": [[1, PID, {}, {}, []]], "queue_pending": []},  # ...but it was queued
    }, [])
    submitted = run_steps(protocol.submit({"1": {}}, prompt_id=PID), server.perform)
    assert submitted.prompt_id == PID
    assert server.log == ["POST /prompt", "GET /queue"]
