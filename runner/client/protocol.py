"""The protocol core both clients share: submit under our own prompt id, and watch a prompt to its end.

Written as steps (generators of :mod:`~runner.client.actions`) over :class:`ServerCalls`, so no
socket is touched here: :class:`runner.ComfyClient` and :class:`runner.AsyncComfyClient` run these
same steps with their own transports. What is decided here, once:

* ``POST /prompt`` carries our own ``prompt_id`` and, before a retry, ``/queue`` and ``/history`` are
  asked whether an earlier attempt was queued after all, so a retry never queues the same work twice;
* the websocket is opened before the POST (frames can come before its reply); frames of prompts not
  being watched are kept for a later watch;
* completion announced on the socket is confirmed from ``/history`` (which can be written after the
  announcement); when the socket fails, ``/history`` is polled; a prompt gone from both ``/queue`` and
  ``/history`` is reported instead of waited for;
* a deadline cancels only our prompt and ends the watch with ``TIMED_OUT``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Any, Container, Generator

from runner.client.actions import Action, OpenSocket, Receive, Sleep
from runner.client.endpoints import ServerCalls, Steps
from runner.client.messages import parse_message
from runner.client.results import RunResult, SubmitResult, outcome_from_history, timings_of, validation_lines
from runner.client.retry import RETRY_STATUSES, Deadline, RetryPolicy
from runner.client.tracker import WEBSOCKET_OUTPUT_CLASSES, RunTracker
from runner.errors import PromptValidationError, ProtocolError, RunTimeoutError, ServerUnreachableError
from runner.events import ConnectionNote, Event, Finished, FinishState

log = logging.getLogger(__name__)

# A watch yields actions for the transport and events for the caller, told apart by type.
WatchSteps = Generator["Action | Event", Any, None]


# After history says a prompt is done: how long to wait for its final frame on a working socket,
# and how long when nothing of the run has come yet (the watch began after the run ended).
DRAIN_SECONDS = 0.5
QUIET_SECONDS = 0.05


def _socket_up_after(note: ConnectionNote, up: bool) -> bool:
    return {"lost": False, "unavailable": False, "reconnected": True}.get(note.state, up)


class CancelRequested(Exception):
    """:meth:`ComfyProtocol.request_cancel` was called: the wait stops at a known point of its loop."""


class ComfyProtocol(ServerCalls):
    """Everything a client knows about one server connection, minus the I/O.

    ``client_id`` names our websocket; ``backlog`` keeps frames of prompts nobody watches yet;
    ``output_classes`` are the node classes whose websocket images are outputs (learnt from
    ``/object_info``). A client owns one protocol and is not shared between threads or event loops.
    """

    def __init__(self, server: str | None = None, *, timeout: float = 30.0, connect_timeout: float = 5.0,
                 poll_interval: float = 1.0, retry: RetryPolicy | None = None, client_id: str | None = None,
                 use_websocket: bool = True) -> None:
        super().__init__(server, timeout=timeout, connect_timeout=connect_timeout, retry=retry)
        self.poll_interval = poll_interval
        self.client_id = client_id or uuid.uuid4().hex
        self.use_websocket = use_websocket
        self.backlog: dict[str, deque[Any]] = defaultdict(lambda: deque(maxlen=10000))
        self.graphs: dict[str, dict[str, Any]] = {}
        self.notes: list[ConnectionNote] = []
        self.output_classes: set[str] = set(WEBSOCKET_OUTPUT_CLASSES)
        # Set from a signal handler or another thread; the watch loop and submit look at it.
        self.cancel_flag = threading.Event()

    def request_cancel(self) -> None:
        self.cancel_flag.set()

    @staticmethod
    def new_prompt_id() -> str:
        """A prompt id of our own: the lowercase UUID form the server accepts."""
        return str(uuid.uuid4())

    def _check_cancel(self) -> None:
        if self.cancel_flag.is_set():
            self.cancel_flag.clear()
            raise CancelRequested

    def object_info(self, class_type: str | None = None) -> Steps[dict[str, Any]]:
        info = yield from super().object_info(class_type)
        # Remember the output nodes: an image frame sent while one of them runs is its output.
        if isinstance(info, dict):
            self.output_classes.update(name for name, spec in info.items()
                                       if isinstance(spec, dict) and spec.get("output_node"))
        return info

    # ------------------------------------------------------------------ submit
    def submit(self, workflow: dict[str, Any], *, prompt_id: str | None = None,
               extra_data: dict[str, Any] | None = None, front: bool = False,
               deadline: Deadline | None = None) -> Steps[SubmitResult]:
        """Queue an API-format workflow under our own ``prompt_id`` (a lowercase UUID).

        Raises :class:`PromptValidationError` on a 400 (nothing queued), :class:`CancelRequested`
        when a cancel was asked before the POST (nothing queued).
        """
        self._check_cancel()
        prompt_id = prompt_id or self.new_prompt_id()
        self.graphs[prompt_id] = workflow
        if self.use_websocket:
            note = yield OpenSocket()
            if note is not None:
                self.notes.append(note)  # reported by the next watch()
        body: dict[str, Any] = {"prompt": workflow, "client_id": self.client_id, "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        if front:
            body["front"] = True
        deadline = deadline or Deadline(None)
        last_error: Exception | None = None
        for attempt in range(self.retry.retries + 1):
            if attempt:
                if self.cancel_flag.is_set():
                    raise CancelRequested  # an earlier attempt may have queued it: the caller cancels our id
                yield Sleep(deadline.cap(self.retry.delay(attempt - 1, getattr(last_error, "retry_after", None))))
                # The previous POST may have been queued even though we saw no reply: check first.
                try:
                    once = RetryPolicy(retries=1)
                    if ((yield from self.queue_state(prompt_id, retry=once)) != "absent"
                            or (yield from self.history(prompt_id, retry=once))):
                        log.debug("prompt %s was queued by an earlier attempt", prompt_id)
                        return SubmitResult(prompt_id, None, {})
                except (ServerUnreachableError, ProtocolError) as exc:
                    last_error = exc
                    continue
            try:
                reply = yield from self.request("POST", "/prompt", json=body, idempotent=False, accept=(400,),
                                                deadline=deadline)
            except ServerUnreachableError as exc:
                last_error = exc
                continue
            except ProtocolError as exc:
                if exc.status not in RETRY_STATUSES:
                    raise
                last_error = exc
                continue
            try:
                answer = reply.json()
            except ValueError:
                last_error = ProtocolError(f"POST /prompt returned malformed JSON ({reply.text[:60]!r})")
                continue
            if reply.status_code == 400:
                lines = validation_lines(answer, workflow)
                raise PromptValidationError("the server rejected the prompt: " + "; ".join(lines), lines, answer)
            if not isinstance(answer, dict) or "prompt_id" not in answer:
                last_error = ProtocolError(f"POST /prompt returned an unexpected reply ({reply.text[:60]!r})")
                continue
            return SubmitResult(answer["prompt_id"], answer.get("number"), answer.get("node_errors") or {})
        assert last_error is not None
        if deadline.expired():
            raise RunTimeoutError(f"timed out while submitting the prompt ({last_error})")
        raise last_error

    # ------------------------------------------------------------------ watching
    def watch(self, prompt_id: str, *, timeout: float | None = None, deadline: Deadline | None = None,
              workflow: dict[str, Any] | None = None) -> WatchSteps:
        """Yield the events of ``prompt_id`` until it ends; the last one is :class:`Finished`.

        On deadline the prompt is cancelled and ``Finished(state=TIMED_OUT)`` is yielded. Raises
        :class:`ServerUnreachableError` / :class:`ProtocolError` if the server is lost for good, and
        :class:`CancelRequested` at the loop turn after :meth:`request_cancel`.
        """
        deadline = deadline or Deadline(timeout)
        tracker = RunTracker(prompt_id, workflow or self.graphs.get(prompt_id) or {}, self.output_classes)
        started_wall = time.time()
        backlog = self.backlog.pop(prompt_id, deque())
        socket_up = self.use_websocket  # as far as the notes so far tell
        for note in self.notes:
            note.prompt_id = prompt_id
            socket_up = _socket_up_after(note, socket_up)
            yield note
        self.notes.clear()
        for message in backlog:
            yield from tracker.feed(message)
        next_poll = time.monotonic() + (self.poll_interval if self.use_websocket else 0.0)
        polls_without_trace = 0
        while True:
            # Raised here, at a known point of our own loop, rather than wherever a signal landed.
            self._check_cancel()
            now = time.monotonic()
            if deadline.expired():
                state = yield from self.cancel(prompt_id)
                yield self.finish(tracker, FinishState.TIMED_OUT, f"timed out after {time.time() - started_wall:.1f}s "
                                  f"(prompt was {state}; it has been cancelled)", None, started_wall)
                return
            if tracker.poll_now or now >= next_poll:
                tracker.poll_now = False
                entry = yield from self.history(prompt_id, deadline=deadline)
                if entry is not None:
                    if socket_up and not tracker.ended:
                        # History is written before the run's last frames are sent, and frames may
                        # still wait unread on our socket (progress, images that exist only there).
                        yield from self._drain(tracker, deadline)
                    state, message, error = outcome_from_history(entry, tracker.titles)
                    yield self.finish(tracker, state, message, entry, started_wall, error)
                    return
                if tracker.done:
                    # Completion was announced before history was written: look again soon (the
                    # final ``executing{node: null}`` frame, sent after the write, also triggers it).
                    next_poll = now + min(self.poll_interval, 0.05)
                else:
                    # Not in history: it must be queued or running, else it is gone for good.
                    # (The server moves a job from the queue to history atomically, so checking the
                    # queue first and history second cannot miss it.)
                    if ((yield from self.queue_state(prompt_id, deadline=deadline)) == "absent"
                            and (yield from self.history(prompt_id, deadline=deadline)) is None):
                        polls_without_trace += 1
                        if polls_without_trace >= 2:
                            yield self.finish(tracker, FinishState.INTERRUPTED, "the prompt disappeared from the server "
                                              "(deleted from the queue, or the server restarted)", None, started_wall)
                            return
                    else:
                        polls_without_trace = 0
                    next_poll = now + self.poll_interval
            wait = deadline.cap(max(0.0, next_poll - time.monotonic()))
            message, note = yield Receive(wait, prompt_id)
            if note is not None:
                note.prompt_id = prompt_id
                socket_up = _socket_up_after(note, socket_up)
                yield note
                if note.state == "lost":
                    next_poll = time.monotonic()  # events may have been lost: look at history now
            if message is not None:
                yield from tracker.feed(message)

    def _drain(self, tracker: RunTracker, deadline: Deadline) -> WatchSteps:
        """Read our socket until the run's final frame (or :data:`DRAIN_SECONDS`), after history
        said the prompt is done. A watch that has seen nothing of the run (it started after the
        run ended) stops at the first quiet :data:`QUIET_SECONDS`."""
        until = time.monotonic() + DRAIN_SECONDS
        while not tracker.ended:
            seen = tracker.started or tracker.done is not None or tracker.current_node is not None
            wait = deadline.cap(min(until - time.monotonic(), DRAIN_SECONDS if seen else QUIET_SECONDS))
            if wait <= 0:
                return
            message, note = yield Receive(wait, tracker.prompt_id)
            if note is not None:
                note.prompt_id = tracker.prompt_id
                yield note
                if not _socket_up_after(note, True):
                    return
            if message is not None:
                yield from tracker.feed(message)
            elif not seen:
                return

    def route(self, frame: Any, watched: Container[str]) -> tuple[dict[str, Any] | None, str | None]:
        """A websocket frame parsed, and the prompt it names (None: it names none, e.g. a preview).

        A frame of a prompt nobody watches is kept in :attr:`backlog` for a later watch, and
        ``(None, None)`` is returned, as for a frame that cannot be parsed.
        """
        parsed = parse_message(frame)
        if parsed is None:
            return None, None
        owner = parsed.get("prompt_id")
        if owner is not None and owner not in watched:
            self.backlog[owner].append(parsed)
            return None, None
        return parsed, owner

    # ------------------------------------------------------------------ results
    @staticmethod
    def finish(tracker: RunTracker, state: FinishState, message: str, entry: dict[str, Any] | None,
               started_wall: float, error: dict[str, Any] | None = None) -> Finished:
        result = RunResult(tracker.prompt_id, state, message, entry, error, timings_of(entry, started_wall),
                           images=list(tracker.images))
        finished = Finished(prompt_id=tracker.prompt_id, state=state, message=message)
        finished.result = result
        return finished

    @staticmethod
    def cancelled(prompt_id: str, state: str) -> Finished:
        """The end of a wait that we cancelled (Ctrl-C, a cancelled task, :meth:`request_cancel`)."""
        message = f"cancelled by the user (prompt was {state}; it has been cancelled)"
        finished = Finished(prompt_id=prompt_id, state=FinishState.CANCELLED, message=message)
        finished.result = RunResult(prompt_id, FinishState.CANCELLED, message)
        return finished
