"""``ComfyClient``: a small, race-safe HTTP + WebSocket client for one ComfyUI server.

What makes it safe to build a CLI, a bot or a web backend on:

* every network operation has a timeout (HTTP connect/read, websocket open/recv/close), and a run
  has an optional wall-clock deadline, so nothing waits forever on a stalled socket;
* idempotent requests are retried with exponential backoff and jitter on connection errors, 5xx
  and 429, honouring ``Retry-After``; ``POST /prompt`` is made idempotent by sending our own
  ``prompt_id`` and checking ``/queue`` + ``/history`` before re-posting, so a retry never queues
  the same work twice;
* the websocket is opened before the prompt is posted (frames can arrive before the POST reply)
  and frames for prompts not being watched are buffered; when the socket fails the client
  reconnects with backoff and meanwhile polls ``/history`` (completion can be announced before the
  history entry exists, and a late socket may never see the end); a prompt that vanished from both
  ``/queue`` and ``/history`` is reported instead of waited for;
* cancelling touches only our own prompt: it is deleted from the queue and interrupted by id.

The token, when given, is sent as ``Authorization: Bearer ...`` on HTTP and on the websocket
handshake and is never logged or shown in ``repr``. The client is not thread-safe: use one
client per thread (they are cheap).
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import struct
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect as ws_connect

from runner.errors import (
    ExecutionError,
    OutOfMemoryError,
    PromptInterruptedError,
    PromptValidationError,
    ProtocolError,
    RunTimeoutError,
    CancelledByUserError,
    ServerUnreachableError,
)
from runner.events import (
    Cached,
    ConnectionNote,
    Event,
    Finished,
    FinishState,
    NodeExecuted,
    NodeStarted,
    Preview,
    Progress,
    Queued,
    Started,
)

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8188"
_RETRY_STATUSES = {429, 500, 502, 503, 504}
_OOM_MARKERS = ("out of memory", "outofmemory", "allocation on device", "cuda error: out of memory")


def normalise_server(url: str | None) -> str:
    """``host:port`` or a full URL (with an optional path prefix) -> ``scheme://host:port/prefix``.

    >>> normalise_server("127.0.0.1:8188")
    'http://127.0.0.1:8188'
    >>> normalise_server("https://example.com/comfy/")
    'https://example.com/comfy'
    """
    url = (url or DEFAULT_SERVER).strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid server URL {url!r}: use http(s)://host:port")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def websocket_url(server: str, client_id: str) -> str:
    """The ``/ws`` URL at the same base (and path prefix) as ``server``."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", f"clientId={client_id}", ""))


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits ``uniform(0.5, 1) * min(max, base * 2**n)``."""

    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay * 4)
        return min(self.max_delay, self.base_delay * (2**attempt)) * random.uniform(0.5, 1.0)


class Deadline:
    """A wall-clock deadline; ``None`` seconds means no deadline."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end

    def cap(self, seconds: float) -> float:
        remaining = self.remaining()
        return seconds if remaining is None else min(seconds, remaining)


@dataclass
class SubmitResult:
    prompt_id: str
    number: float | None
    node_errors: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """How a prompt ended, its history entry and timings. ``raise_for_state`` maps failures to errors."""

    prompt_id: str
    state: FinishState
    message: str = ""
    history: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # execution_error / execution_interrupted payload
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, Any]:
        return (self.history or {}).get("outputs") or {}

    @property
    def ok(self) -> bool:
        return self.state is FinishState.SUCCESS

    def raise_for_state(self) -> None:
        error = self.error or {}
        details = dict(node_id=error.get("node_id"), node_type=error.get("node_type"),
                       exception_type=error.get("exception_type"), exception_message=error.get("exception_message"))
        if self.state is FinishState.EXECUTION_ERROR:
            raise ExecutionError(self.message, **details)
        if self.state is FinishState.OUT_OF_MEMORY:
            raise OutOfMemoryError(self.message, **details)
        if self.state is FinishState.INTERRUPTED:
            raise PromptInterruptedError(self.message)
        if self.state is FinishState.TIMED_OUT:
            raise RunTimeoutError(self.message)
        if self.state is FinishState.CANCELLED:
            raise CancelledByUserError(self.message)


def is_out_of_memory(error: dict[str, Any]) -> bool:
    """True when an ``execution_error`` payload describes running out of (GPU) memory."""
    text = f"{error.get('exception_type', '')} {error.get('exception_message', '')}".lower()
    return any(marker in text for marker in _OOM_MARKERS)


def describe_execution_error(error: dict[str, Any], titles: dict[str, str] | None = None) -> str:
    node_id = error.get("node_id")
    title = (titles or {}).get(str(node_id)) if node_id is not None else None
    where = f"node {node_id} ({error.get('node_type')}{f' {title!r}' if title else ''})"
    message = str(error.get("exception_message", "")).strip().splitlines()
    first = message[0] if message else "no message"
    return f"{where} failed: {error.get('exception_type', 'Exception')}: {first}"


def validation_lines(reply: dict[str, Any], workflow: dict[str, Any] | None = None) -> list[str]:
    """One human line per problem of a 400 ``/prompt`` reply (top-level error, then per node/input)."""
    lines: list[str] = []
    error = reply.get("error") or {}
    node_errors = reply.get("node_errors") or {}
    if isinstance(error, dict) and (error.get("message") and not node_errors):
        details = error.get("details")
        lines.append(f"{error['message']}{f' ({details})' if details else ''}")
    elif isinstance(error, str):
        lines.append(error)
    for node_id, entry in node_errors.items():
        node = (workflow or {}).get(node_id) or {}
        title = (node.get("_meta") or {}).get("title")
        name = f"node {node_id} ({entry.get('class_type', node.get('class_type', '?'))}{f' {title!r}' if title else ''})"
        for item in entry.get("errors", []):
            extra = item.get("extra_info") or {}
            input_name = extra.get("input_name")
            received = f" (got {extra['received_value']!r})" if "received_value" in extra else ""
            where = f"{name} input {input_name!r}" if input_name else name
            text = item.get("message", "invalid")
            details = item.get("details")
            if details and details not in (input_name, "") and details not in text:
                text = f"{text}: {details}"
            lines.append(f"{where}: {text}{received}")
    return lines or ["the server rejected the prompt"]


def _ws_connect_kwargs() -> dict[str, Any]:
    """Options that differ between websockets releases (13 .. 17)."""
    params = inspect.signature(ws_connect).parameters
    extra: dict[str, Any] = {}
    if "legacy" in params:
        extra["legacy"] = True  # plain connection object, we manage reconnects ourselves
    if "proxy" in params:
        extra["proxy"] = None
    return extra


class ComfyClient:
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
        self.server = normalise_server(server)
        self._token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.retry = retry or RetryPolicy()
        self.client_id = client_id or uuid.uuid4().hex
        self.use_websocket = use_websocket
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "comfy-run/0.1"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._ws: Any = None
        self._ws_failures = 0
        self._ws_next_attempt = 0.0
        self._ws_ever_open = False
        self._backlog: dict[str, deque[Any]] = defaultdict(lambda: deque(maxlen=10000))
        # Set from a signal handler (or another thread): the watch loop stops at its next turn.
        self._cancel_requested = threading.Event()
        self._graphs: dict[str, dict[str, Any]] = {}
        self._notes: list[ConnectionNote] = []

    def __repr__(self) -> str:  # never shows the token
        return f"ComfyClient(server={self.server!r}, client_id={self.client_id!r}, token={'set' if self._token else 'none'})"

    def __enter__(self) -> "ComfyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._close_socket()
        self._session.close()

    # ------------------------------------------------------------------ HTTP core
    def _url(self, path: str) -> str:
        return self.server + path

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        accept: tuple[int, ...] = (),
        deadline: Deadline | None = None,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP request with timeouts and retries. Returns 2xx (or a status in ``accept``)."""
        policy = retry or self.retry
        attempts = policy.retries + 1 if idempotent else 1
        deadline = deadline or Deadline(None)
        last_error: Exception | None = None
        # Uploads pass a factory so each attempt re-opens the file from its start.
        files_factory = kwargs.pop("files_factory", None)
        for attempt in range(attempts):
            if attempt and deadline.expired():
                break
            retry_after: float | None = None
            call_kwargs = dict(kwargs)
            opened: list[Any] = []
            if files_factory is not None:
                call_kwargs["files"], opened = files_factory()
            read_timeout = max(0.05, deadline.cap(self.timeout))
            try:
                response = self._session.request(
                    method, self._url(path), timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                    stream=stream, **call_kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                log.debug("%s %s failed (attempt %d): %s", method, path, attempt + 1, type(exc).__name__)
                last_error = ServerUnreachableError(
                    f"cannot reach ComfyUI at {self.server} ({type(exc).__name__}); is the server running? "
                    "Check --server / COMFYUI_API_URL"
                )
            else:
                if response.status_code < 300 or response.status_code in accept:
                    return response
                body = response.text[:200].strip() if not stream else ""
                response.close()
                if response.status_code in _RETRY_STATUSES:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    last_error = ProtocolError(
                        f"{method} {path} answered {response.status_code} {response.reason}"
                        f"{f': {body.splitlines()[0]}' if body else ''}", status=response.status_code)
                else:
                    hint = " (check --token / COMFYUI_API_KEY)" if response.status_code in (401, 403) else ""
                    raise ProtocolError(f"{method} {path} answered {response.status_code} {response.reason}{hint}",
                                        status=response.status_code) from None
            finally:
                for handle in opened:
                    handle.close()
            if attempt + 1 < attempts:
                pause = deadline.cap(policy.delay(attempt, retry_after))
                log.debug("retrying %s %s in %.2fs", method, path, pause)
                time.sleep(pause)
        assert last_error is not None
        raise last_error

    def get_json(self, path: str, *, params: dict[str, Any] | None = None, deadline: Deadline | None = None,
                 retry: RetryPolicy | None = None, accept: tuple[int, ...] = ()) -> Any:
        """GET a JSON document; malformed JSON counts as a retryable failure."""
        policy = retry or self.retry
        deadline = deadline or Deadline(None)
        for attempt in range(policy.retries + 1):
            response = self.request("GET", path, params=params, deadline=deadline, retry=policy, accept=accept)
            if response.status_code in accept and response.status_code >= 300:
                return None
            try:
                return response.json()
            except ValueError:
                error = ProtocolError(f"GET {path} returned malformed JSON ({response.text[:60]!r})")
                if attempt == policy.retries or deadline.expired():
                    raise error from None
                time.sleep(deadline.cap(policy.delay(attempt)))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ plain endpoints
    def system_stats(self) -> dict[str, Any]:
        return self.get_json("/system_stats")

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        return self.get_json("/object_info" + (f"/{class_type}" if class_type else ""))

    def models(self, folder: str) -> list[str]:
        """File names in a model folder; an unknown folder is an empty list."""
        return self.get_json(f"/models/{folder}", accept=(404,)) or []

    def queue(self, deadline: Deadline | None = None, retry: RetryPolicy | None = None) -> dict[str, Any]:
        return self.get_json("/queue", deadline=deadline, retry=retry)

    def history(self, prompt_id: str, deadline: Deadline | None = None, retry: RetryPolicy | None = None) -> dict[str, Any] | None:
        """The history entry of ``prompt_id``, or None while it is not (yet) in history."""
        data = self.get_json(f"/history/{prompt_id}", deadline=deadline, retry=retry)
        if not isinstance(data, dict):
            raise ProtocolError(f"GET /history/{prompt_id} returned {type(data).__name__}, expected an object")
        return data.get(prompt_id) or None

    def queue_state(self, prompt_id: str, deadline: Deadline | None = None, retry: RetryPolicy | None = None) -> str:
        """``running``, ``pending`` or ``absent``."""
        queue = self.queue(deadline=deadline, retry=retry) or {}
        if any(len(item) > 1 and item[1] == prompt_id for item in queue.get("queue_running", [])):
            return "running"
        if any(len(item) > 1 and item[1] == prompt_id for item in queue.get("queue_pending", [])):
            return "pending"
        return "absent"

    def interrupt(self, prompt_id: str | None = None, retry: RetryPolicy | None = None) -> None:
        """Interrupt ``prompt_id`` if it is running (no id: whatever runs; avoid that)."""
        self.request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {}, retry=retry)

    def delete_queued(self, prompt_ids: list[str], retry: RetryPolicy | None = None) -> None:
        self.request("POST", "/queue", json={"delete": list(prompt_ids)}, retry=retry)

    def upload_image(self, path: str | Path, *, subfolder: str = "", overwrite: bool = False,
                     folder_type: str = "input") -> str:
        """Upload a local file; returns the name to put in a LoadImage-style input.

        The server may rename on a clash (``name (1).png``): always use the returned name. The
        upload is safe to retry: identical bytes under the same name are not stored twice.
        """
        path = Path(path)

        def files() -> tuple[dict[str, Any], list[Any]]:
            handle = path.open("rb")
            return {"image": (path.name, handle)}, [handle]

        data = {"type": folder_type, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        response = self.request("POST", "/upload/image", data=data, files_factory=files)
        try:
            reply = response.json()
            name = reply["name"]
        except (ValueError, KeyError, TypeError):
            raise ProtocolError(f"POST /upload/image returned an unexpected reply ({response.text[:60]!r})") from None
        folder = reply.get("subfolder") or ""
        return f"{folder}/{name}" if folder else name

    # ------------------------------------------------------------------ submit / cancel
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
            note = self._ensure_socket()
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
                if exc.status not in _RETRY_STATUSES:
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

    def cancel(self, prompt_id: str) -> str:
        """Cancel only our prompt: delete it from the queue and interrupt it if running.

        Both calls are targeted by id, so the order (delete, then interrupt) is race free: a
        pending prompt cannot start after it was deleted, and an interrupt naming a prompt that
        is not running does nothing. Returns the queue state seen before (``running``, ``pending``,
        ``absent``, or ``unknown`` when the server could not be asked). Never waits long.
        """
        quick = RetryPolicy(retries=1, base_delay=0.2, max_delay=0.5)
        saved_timeout, self.timeout = self.timeout, min(self.timeout, 5.0)
        try:
            try:
                state = self.queue_state(prompt_id, retry=quick)
            except (ServerUnreachableError, ProtocolError):
                state = "unknown"
            try:
                if state in ("pending", "unknown"):
                    self.delete_queued([prompt_id], retry=quick)
                if state in ("running", "unknown"):
                    self.interrupt(prompt_id, retry=quick)
                elif state == "pending" and self.queue_state(prompt_id, retry=quick) == "running":
                    self.interrupt(prompt_id, retry=quick)  # it started between our two calls
            except (ServerUnreachableError, ProtocolError) as exc:
                log.warning("could not cancel prompt %s: %s", prompt_id, exc)
            return state
        finally:
            self.timeout = saved_timeout

    # ------------------------------------------------------------------ websocket
    def _ensure_socket(self) -> ConnectionNote | None:
        """Open the socket if it is closed and the backoff allows; returns a note when state changed."""
        if self._ws is not None or not self.use_websocket or time.monotonic() < self._ws_next_attempt:
            return None
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        try:
            self._ws = ws_connect(
                websocket_url(self.server, self.client_id), additional_headers=headers,
                open_timeout=self.connect_timeout, close_timeout=1.0, ping_interval=20, ping_timeout=20,
                max_size=64 * 1024 * 1024, compression=None, **_ws_connect_kwargs(),
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            self._ws = None
            self._ws_failures += 1
            self._ws_next_attempt = time.monotonic() + self.retry.delay(min(self._ws_failures - 1, 5))
            log.debug("websocket unavailable: %s", type(exc).__name__)
            if self._ws_failures == 1:
                return ConnectionNote(prompt_id="", state="unavailable", detail=f"{type(exc).__name__}; polling /history")
            return None
        reconnected = self._ws_ever_open
        self._ws_ever_open = True
        self._ws_failures = 0
        return ConnectionNote(prompt_id="", state="reconnected") if reconnected else None

    def _close_socket(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # closing a broken socket can fail in many ways; it is gone either way
                pass
            self._ws = None

    def _receive(self, timeout: float) -> tuple[Any, ConnectionNote | None]:
        """One websocket message (or None after ``timeout``), plus a note if the socket changed."""
        note = self._ensure_socket()
        if self._ws is None:
            time.sleep(max(0.0, min(timeout, max(0.0, self._ws_next_attempt - time.monotonic()) or timeout)))
            return None, note
        try:
            return self._ws.recv(timeout=max(0.0, timeout)), note
        except TimeoutError:
            return None, note
        except (ConnectionClosed, OSError) as exc:
            self._close_socket()
            self._ws_failures = 1
            self._ws_next_attempt = time.monotonic() + self.retry.delay(0)
            return None, ConnectionNote(prompt_id="", state="lost", detail=type(exc).__name__)

    # ------------------------------------------------------------------ watching
    def watch(self, prompt_id: str, *, timeout: float | None = None, deadline: Deadline | None = None,
              workflow: dict[str, Any] | None = None) -> Iterator[Event]:
        """Yield the events of ``prompt_id`` until it ends; the last one is :class:`Finished`.

        On deadline the prompt is cancelled and ``Finished(state=TIMED_OUT)`` is yielded. Raises
        :class:`ServerUnreachableError` / :class:`ProtocolError` if the server is lost for good.
        """
        deadline = deadline or Deadline(timeout)
        tracker = _RunTracker(prompt_id, workflow or self._graphs.get(prompt_id) or {})
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
            message, note = self._receive(wait)
            if note is not None:
                note.prompt_id = prompt_id
                yield note
                if note.state == "lost":
                    next_poll = time.monotonic()  # events may have been lost: look at history now
            if message is None:
                continue
            parsed = _parse_message(message)
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
    def _finish(self, tracker: "_RunTracker", state: FinishState, message: str, entry: dict[str, Any] | None,
                started_wall: float, error: dict[str, Any] | None = None) -> Finished:
        result = RunResult(tracker.prompt_id, state, message, entry, error, _timings(entry, started_wall))
        finished = Finished(prompt_id=tracker.prompt_id, state=state, message=message)
        finished.result = result
        return finished

    def _finished_from_history(self, tracker: "_RunTracker", entry: dict[str, Any], started_wall: float) -> Finished:
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        last_kind, last_data = (messages[-1][0], messages[-1][1]) if messages and len(messages[-1]) == 2 else (None, {})
        if last_kind == "execution_error":
            state = FinishState.OUT_OF_MEMORY if is_out_of_memory(last_data) else FinishState.EXECUTION_ERROR
            return self._finish(tracker, state, describe_execution_error(last_data, tracker.titles), entry, started_wall, last_data)
        if last_kind == "execution_interrupted":
            node, node_type = last_data.get("node_id"), last_data.get("node_type")
            where = f" while node {node} ({node_type}) ran" if node else ""
            return self._finish(tracker, FinishState.INTERRUPTED, f"interrupted on the server{where}",
                                entry, started_wall, last_data)
        if status.get("status_str", "success") == "success" and status.get("completed", True):
            return self._finish(tracker, FinishState.SUCCESS, "success", entry, started_wall)
        return self._finish(tracker, FinishState.EXECUTION_ERROR,
                            f"the server reported status {status.get('status_str')!r}", entry, started_wall)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def _timings(entry: dict[str, Any] | None, started_wall: float) -> dict[str, float]:
    now = time.time()
    timings = {"watch_s": round(now - started_wall, 4)}
    if entry:
        stamps = {kind: data.get("timestamp") for kind, data in (entry.get("status") or {}).get("messages", [])
                  if isinstance(data, dict) and data.get("timestamp")}
        start = stamps.get("execution_start")
        end = max(stamps.values()) if stamps else None
        create = ((entry.get("prompt") or [None] * 4)[3] or {}).get("create_time") if len(entry.get("prompt") or []) > 3 else None
        if start and end:
            timings["execution_s"] = round((end - start) / 1000, 4)
        if start and create:
            timings["queue_wait_s"] = round((start - create) / 1000, 4)
    return timings


def _parse_message(message: Any) -> dict[str, Any] | None:
    """A websocket message as ``{"type", "data", "prompt_id"}``; binary frames decoded to a header."""
    if isinstance(message, str):
        try:
            parsed = json.loads(message)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        data = parsed.get("data") if isinstance(parsed.get("data"), dict) else {}
        return {"type": parsed.get("type"), "data": data, "prompt_id": data.get("prompt_id")}
    if isinstance(message, (bytes, bytearray)) and len(message) >= 8:
        event, second = struct.unpack(">II", bytes(message[:8]))
        if event == 1:
            fmt = {1: "jpeg", 2: "png"}.get(second, "unknown")
            return {"type": "_preview", "data": {"format": fmt, "image": bytes(message[8:])}, "prompt_id": None}
        if event == 4 and len(message) >= 8 + second:
            try:
                meta = json.loads(bytes(message[8:8 + second]))
            except ValueError:
                return None
            image_type = str(meta.get("image_type", "image/png")).split("/")[-1]
            return {"type": "_preview", "data": {"format": image_type, "image": bytes(message[8 + second:]),
                                                 "node": meta.get("node_id")}, "prompt_id": meta.get("prompt_id")}
    # Event 3 (TEXT) is broadcast to everyone without a prompt id: not attributable, ignored.
    return None


class _RunTracker:
    """Turns one prompt's websocket messages into typed events and notices completion."""

    def __init__(self, prompt_id: str, workflow: dict[str, Any]) -> None:
        self.prompt_id = prompt_id
        self.class_types = {nid: node.get("class_type") for nid, node in workflow.items() if isinstance(node, dict)}
        self.titles = {nid: (node.get("_meta") or {}).get("title") or node.get("class_type")
                       for nid, node in workflow.items() if isinstance(node, dict)}
        self.done: str | None = None  # the completion signal seen on the socket, if any
        self.poll_now = False  # a completion signal arrived: read history at once
        self.current_node: str | None = None
        self.started = False

    def _node(self, node_id: Any) -> dict[str, Any]:
        nid = str(node_id)
        return {"node_id": nid, "class_type": self.class_types.get(nid), "title": self.titles.get(nid)}

    def feed(self, message: dict[str, Any]) -> list[Event]:
        kind, data, pid = message["type"], message["data"], self.prompt_id
        if kind == "execution_start":
            self.started = True
            return [Started(prompt_id=pid)]
        if kind == "execution_cached":
            return [Cached(prompt_id=pid, nodes=[str(n) for n in data.get("nodes", [])])]
        if kind == "executing":
            node = data.get("node")
            if node is None:
                if data.get("prompt_id") == pid:
                    self.done = self.done or "executing_null"
                    self.poll_now = True
                return []
            if data.get("prompt_id") is None and not self.started:
                return []  # a reconnect frame about some other prompt of this client
            self.current_node = str(node)
            return [NodeStarted(prompt_id=pid, **self._node(node))]
        if kind == "progress":
            node = data.get("node") or self.current_node
            return [Progress(prompt_id=pid, value=data.get("value", 0), max=data.get("max", 0), **self._node(node))]
        if kind == "executed":
            return [NodeExecuted(prompt_id=pid, output=data.get("output") or {}, **self._node(data.get("node")))]
        if kind in ("execution_success", "execution_error", "execution_interrupted"):
            self.done = kind
            self.poll_now = True
            return []
        if kind == "_preview" and self.started and not self.done:
            preview = Preview(prompt_id=pid, node_id=data.get("node") or self.current_node,
                              image_format=data["format"], size=len(data["image"]))
            preview.data = data["image"]
            return [preview]
        return []
