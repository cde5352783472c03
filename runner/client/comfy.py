"""``ComfyClient``: submit a prompt, follow it over the websocket (polling history as a backstop), wait, cancel."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Any, Callable, Iterator

from runner.client.endpoints import ServerApi
from runner.client.http import RETRY_STATUSES
from runner.client.messages import parse_message
from runner.client.results import (
    RunResult,
    SubmitResult,
    outcome_from_history,
    timings_of,
    validation_lines,
)
from runner.client.retry import Deadline, RetryPolicy
from runner.client.tracker import WEBSOCKET_OUTPUT_CLASSES, RunTracker
from runner.client.ws import EventSocket, websocket_url
from runner.errors import PromptValidationError, ProtocolError, RunTimeoutError, ServerUnreachableError
from runner.events import ConnectionNote, Event, Finished, FinishState, Queued

log = logging.getLogger(__name__)


class ComfyClient(ServerApi):
    """Submit, watch, cancel and collect ComfyUI prompts.

    >>> with ComfyClient("http://127.0.0.1:8188") as client:          # doctest: +SKIP
    ...     result = client.run(api_workflow, timeout=600)
    ...     result.raise_for_state()
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        poll_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        client_id: str | None = None,
        use_websocket: bool = True,
    ) -> None:
        super().__init__(server, token, timeout=timeout, connect_timeout=connect_timeout, retry=retry)
        self.poll_interval = poll_interval
        self.client_id = client_id or uuid.uuid4().hex
        self.use_websocket = use_websocket
        self._socket = EventSocket(websocket_url(self.server, self.client_id), token,
                                   connect_timeout=connect_timeout, retry=self.retry, enabled=use_websocket)
        # Messages of prompts other than the one being watched, kept for a later watch().
        self._backlog: dict[str, deque[Any]] = defaultdict(lambda: deque(maxlen=10000))
        # Set from a signal handler (or another thread): the watch loop stops at its next turn.
        self._cancel_requested = threading.Event()
        self._graphs: dict[str, dict[str, Any]] = {}
        self._notes: list[ConnectionNote] = []
        # Classes whose image frames are outputs, not previews; grows with what /object_info says.
        self.output_classes: set[str] = set(WEBSOCKET_OUTPUT_CLASSES)

    def __repr__(self) -> str:  # never shows the token
        return f"ComfyClient(server={self.server!r}, client_id={self.client_id!r}, token={'set' if self._token else 'none'})"

    def __enter__(self) -> "ComfyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close()
        super().close()

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        info = super().object_info(class_type)
        # Remember the output nodes: an image frame sent while one of them runs is its output.
        if isinstance(info, dict):
            self.output_classes.update(name for name, spec in info.items()
                                       if isinstance(spec, dict) and spec.get("output_node"))
        return info

    # ------------------------------------------------------------------ submit
    def submit(self, workflow: dict[str, Any], *, prompt_id: str | None = None,
               extra_data: dict[str, Any] | None = None, front: bool = False,
               deadline: Deadline | None = None) -> SubmitResult:
        """Queue an API-format workflow under our own ``prompt_id`` (a lowercase UUID).

        Raises :class:`PromptValidationError` on a 400 (nothing queued). Opens the websocket first
        so no early frame is lost.
        """
        prompt_id = prompt_id or str(uuid.uuid4())
        self._graphs[prompt_id] = workflow
        if self.use_websocket:
            note = self._socket.open()
            if note is not None:
                self._notes.append(note)  # reported by the next watch()
        body: dict[str, Any] = {"prompt": workflow, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        if front:
            body["front"] = True
        deadline = deadline or Deadline(None)
        last_error: Exception | None = None
        for attempt in range(self.retry.retries + 1):
            if attempt:
                time.sleep(deadline.cap(self.retry.delay(attempt - 1, getattr(last_error, "retry_after", None))))
                # The previous POST may have been queued even though we saw no reply: check first.
                try:
                    if self.queue_state(prompt_id, retry=RetryPolicy(retries=1)) != "absent" or self.history(prompt_id, retry=RetryPolicy(retries=1)):
                        log.debug("prompt %s was queued by an earlier attempt", prompt_id)
                        return SubmitResult(prompt_id, None, {})
                except (ServerUnreachableError, ProtocolError) as exc:
                    last_error = exc
                    continue
            try:
                response = self.request("POST", "/prompt", json=body, idempotent=False, accept=(400,), deadline=deadline)
            except ServerUnreachableError as exc:
                last_error = exc
                continue
            except ProtocolError as exc:
                if exc.status not in RETRY_STATUSES:
                    raise
                last_error = exc
                continue
            try:
                reply = response.json()
            except ValueError:
                last_error = ProtocolError(f"POST /prompt returned malformed JSON ({response.text[:60]!r})")
                continue
            if response.status_code == 400:
                lines = validation_lines(reply, workflow)
                raise PromptValidationError("the server rejected the prompt: " + "; ".join(lines), lines, reply)
            if not isinstance(reply, dict) or "prompt_id" not in reply:
                last_error = ProtocolError(f"POST /prompt returned an unexpected reply ({response.text[:60]!r})")
                continue
            return SubmitResult(reply["prompt_id"], reply.get("number"), reply.get("node_errors") or {})
        assert last_error is not None
        if deadline.expired():
            raise RunTimeoutError(f"timed out while submitting the prompt ({last_error})")
        raise last_error

    def request_cancel(self) -> None:
        """Ask a running :meth:`wait` / :meth:`watch` to cancel its prompt at the next turn of its
        loop (within one poll interval). Safe to call from a signal handler or another thread."""
        self._cancel_requested.set()

    # ------------------------------------------------------------------ watching
    def watch(self, prompt_id: str, *, timeout: float | None = None, deadline: Deadline | None = None,
              workflow: dict[str, Any] | None = None) -> Iterator[Event]:
        """Yield the events of ``prompt_id`` until it ends; the last one is :class:`Finished`.

        On deadline the prompt is cancelled and ``Finished(state=TIMED_OUT)`` is yielded. Raises
        :class:`ServerUnreachableError` / :class:`ProtocolError` if the server is lost for good.
        """
        deadline = deadline or Deadline(timeout)
        tracker = RunTracker(prompt_id, workflow or self._graphs.get(prompt_id) or {}, self.output_classes)
        started_wall = time.time()
        backlog = self._backlog.pop(prompt_id, deque())
        for note in self._notes:
            note.prompt_id = prompt_id
            yield note
        self._notes.clear()
        for message in backlog:
            yield from tracker.feed(message)
        next_poll = time.monotonic() + (self.poll_interval if self.use_websocket else 0.0)
        polls_without_trace = 0
        while True:
            if self._cancel_requested.is_set():
                # Raised here, at a known point of our own loop, rather than wherever the signal
                # happened to land (inside the socket library, a lock, a half-read reply).
                self._cancel_requested.clear()
                raise KeyboardInterrupt
            now = time.monotonic()
            if deadline.expired():
                state = self.cancel(prompt_id)
                yield self._finish(tracker, FinishState.TIMED_OUT, f"timed out after {time.time() - started_wall:.1f}s "
                                   f"(prompt was {state}; it has been cancelled)", None, started_wall)
                return
            if tracker.poll_now or now >= next_poll:
                tracker.poll_now = False
                entry = self.history(prompt_id, deadline=deadline)
                if entry is not None:
                    yield self._finished_from_history(tracker, entry, started_wall)
                    return
                if tracker.done:
                    # Completion was announced before history was written: look again soon (the
                    # final ``executing{node: null}`` frame, sent after the write, also triggers it).
                    next_poll = now + min(self.poll_interval, 0.05)
                else:
                    # Not in history: it must be queued or running, else it is gone for good.
                    # (The server moves a job from the queue to history atomically, so checking the
                    # queue first and history second cannot miss it.)
                    if self.queue_state(prompt_id, deadline=deadline) == "absent" and self.history(prompt_id, deadline=deadline) is None:
                        polls_without_trace += 1
                        if polls_without_trace >= 2:
                            yield self._finish(tracker, FinishState.INTERRUPTED, "the prompt disappeared from the server "
                                               "(deleted from the queue, or the server restarted)", None, started_wall)
                            return
                    else:
                        polls_without_trace = 0
                    next_poll = now + self.poll_interval
            wait = deadline.cap(max(0.0, next_poll - time.monotonic()))
            message, note = self._socket.receive(wait)
            if note is not None:
                note.prompt_id = prompt_id
                yield note
                if note.state == "lost":
                    next_poll = time.monotonic()  # events may have been lost: look at history now
            if message is None:
                continue
            parsed = parse_message(message)
            if parsed is None:
                continue
            owner = parsed.get("prompt_id")
            if owner is not None and owner != prompt_id:
                self._backlog[owner].append(parsed)
                continue
            yield from tracker.feed(parsed)

    def wait(self, prompt_id: str, *, timeout: float | None = None, on_event: Callable[[Event], None] | None = None,
             workflow: dict[str, Any] | None = None) -> RunResult:
        """Block until ``prompt_id`` ends; Ctrl-C cancels our prompt and returns state CANCELLED."""
        result: RunResult | None = None
        try:
            for event in self.watch(prompt_id, timeout=timeout, workflow=workflow):
                if on_event is not None:
                    on_event(event)
                if isinstance(event, Finished):
                    result = event.result
        except KeyboardInterrupt:
            state = self.cancel(prompt_id)
            result = RunResult(prompt_id, FinishState.CANCELLED, f"cancelled by the user (prompt was {state}; it has been cancelled)")
            if on_event is not None:
                finished = Finished(prompt_id=prompt_id, state=FinishState.CANCELLED, message=result.message)
                finished.result = result
                on_event(finished)
        assert result is not None
        return result

    def run(self, workflow: dict[str, Any], *, timeout: float | None = None,
            on_event: Callable[[Event], None] | None = None, prompt_id: str | None = None) -> RunResult:
        """Submit and wait. Validation errors raise :class:`PromptValidationError`."""
        deadline = Deadline(timeout)
        submitted = self.submit(workflow, prompt_id=prompt_id, deadline=deadline)
        if on_event is not None:
            on_event(Queued(prompt_id=submitted.prompt_id, number=submitted.number, node_errors=submitted.node_errors))
        return self.wait(submitted.prompt_id, timeout=deadline.remaining(), on_event=on_event, workflow=workflow)

    # ------------------------------------------------------------------ results
    def _finish(self, tracker: RunTracker, state: FinishState, message: str, entry: dict[str, Any] | None,
                started_wall: float, error: dict[str, Any] | None = None) -> Finished:
        result = RunResult(tracker.prompt_id, state, message, entry, error, timings_of(entry, started_wall),
                           images=list(tracker.images))
        finished = Finished(prompt_id=tracker.prompt_id, state=state, message=message)
        finished.result = result
        return finished

    def _finished_from_history(self, tracker: RunTracker, entry: dict[str, Any], started_wall: float) -> Finished:
        state, message, error = outcome_from_history(entry, tracker.titles)
        return self._finish(tracker, state, message, entry, started_wall, error)
