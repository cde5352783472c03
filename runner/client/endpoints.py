"""The plain ComfyUI endpoints (server info, queue, history, uploads) and cancelling one prompt, as steps.

Every call here is a generator of :mod:`~runner.client.actions`: it yields a :class:`Send` or a
:class:`Sleep` and gets the outcome back, so one copy of the retry and error policy serves the sync
and the async client. ``yield from calls.history(prompt_id)`` inside another step runs it there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Generator, TypeVar

from runner.client.actions import Action, Reply, Send, Sleep, Unreachable
from runner.client.urls import normalise_server
from runner.client.retry import RETRY_STATUSES, Deadline, RetryPolicy, parse_retry_after
from runner.errors import ProtocolError, ServerUnreachableError

log = logging.getLogger(__name__)

T = TypeVar("T")
Steps = Generator[Action, Any, T]
# Cancelling must never hang a shutting-down program: few, short attempts.
QUICK = RetryPolicy(retries=1, base_delay=0.2, max_delay=0.5)
CANCEL_TIMEOUT = 5.0


class ServerCalls:
    """One ComfyUI base URL, its timeouts and retry policy, and the endpoint calls as steps.

    Idempotent requests are retried with backoff on connection errors, 5xx and 429 (honouring
    ``Retry-After``); other statuses fail at once.
    """

    def __init__(self, server: str | None = None, *, timeout: float = 30.0, connect_timeout: float = 5.0,
                 retry: RetryPolicy | None = None) -> None:
        self.server = normalise_server(server)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or RetryPolicy()

    def unreachable(self, detail: str) -> ServerUnreachableError:
        return ServerUnreachableError(f"cannot reach ComfyUI at {self.server} ({detail}); is the server running? "
                                      "Check --server / COMFYUI_API_URL")

    # ------------------------------------------------------------------ requests
    def request(self, method: str, path: str, *, idempotent: bool = True, accept: tuple[int, ...] = (),
                deadline: Deadline | None = None, retry: RetryPolicy | None = None, timeout: float | None = None,
                **fields: Any) -> Steps[Reply]:
        """One HTTP request with timeouts and retries. Returns 2xx (or a status in ``accept``)."""
        policy = retry or self.retry
        attempts = policy.retries + 1 if idempotent else 1
        deadline = deadline or Deadline(None)
        last_error: Exception | None = None
        for attempt in range(attempts):
            if attempt and deadline.expired():
                break
            retry_after: float | None = None
            read_timeout = max(0.05, deadline.cap(timeout or self.timeout))
            outcome = yield Send(method, path, read_timeout, min(self.connect_timeout, read_timeout), **fields)
            if isinstance(outcome, Unreachable):
                log.debug("%s %s failed (attempt %d): %s", method, path, attempt + 1, outcome.detail)
                last_error = self.unreachable(outcome.detail)
            elif outcome.status_code < 300 or outcome.status_code in accept:
                return outcome
            elif outcome.status_code in RETRY_STATUSES:
                retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
                body = outcome.text[:200].strip()
                last_error = ProtocolError(
                    f"{method} {path} answered {outcome.status_code} {outcome.reason}"
                    f"{f': {body.splitlines()[0]}' if body else ''}", status=outcome.status_code)
            else:
                hint = " (check --token / COMFYUI_API_KEY)" if outcome.status_code in (401, 403) else ""
                raise ProtocolError(f"{method} {path} answered {outcome.status_code} {outcome.reason}{hint}",
                                    status=outcome.status_code)
            if attempt + 1 < attempts:
                pause = deadline.cap(policy.delay(attempt, retry_after))
                log.debug("retrying %s %s in %.2fs", method, path, pause)
                yield Sleep(pause)
        assert last_error is not None
        raise last_error

    def get_json(self, path: str, *, params: dict[str, Any] | None = None, deadline: Deadline | None = None,
                 retry: RetryPolicy | None = None, accept: tuple[int, ...] = (), timeout: float | None = None) -> Steps[Any]:
        """GET a JSON document; malformed JSON counts as a retryable failure."""
        policy = retry or self.retry
        deadline = deadline or Deadline(None)
        for attempt in range(policy.retries + 1):
            reply = yield from self.request("GET", path, params=params, deadline=deadline, retry=policy, accept=accept,
                                            timeout=timeout)
            if reply.status_code in accept and reply.status_code >= 300:
                return None
            try:
                return reply.json()
            except ValueError:
                error = ProtocolError(f"GET {path} returned malformed JSON ({reply.text[:60]!r})")
                if attempt == policy.retries or deadline.expired():
                    raise error from None
                yield Sleep(deadline.cap(policy.delay(attempt)))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ endpoints
    def system_stats(self) -> Steps[dict[str, Any]]:
        return (yield from self.get_json("/system_stats"))

    def object_info(self, class_type: str | None = None) -> Steps[dict[str, Any]]:
        return (yield from self.get_json("/object_info" + (f"/{class_type}" if class_type else "")))

    def models(self, folder: str) -> Steps[list[str]]:
        """File names in a model folder; an unknown folder is an empty list."""
        return (yield from self.get_json(f"/models/{folder}", accept=(404,))) or []

    def queue(self, deadline: Deadline | None = None, retry: RetryPolicy | None = None,
              timeout: float | None = None) -> Steps[dict[str, Any]]:
        return (yield from self.get_json("/queue", deadline=deadline, retry=retry, timeout=timeout))

    def history(self, prompt_id: str, deadline: Deadline | None = None,
                retry: RetryPolicy | None = None) -> Steps[dict[str, Any] | None]:
        """The history entry of ``prompt_id``, or None while it is not (yet) in history."""
        data = yield from self.get_json(f"/history/{prompt_id}", deadline=deadline, retry=retry)
        if not isinstance(data, dict):
            raise ProtocolError(f"GET /history/{prompt_id} returned {type(data).__name__}, expected an object")
        return data.get(prompt_id) or None

    def queue_state(self, prompt_id: str, deadline: Deadline | None = None, retry: RetryPolicy | None = None,
                    timeout: float | None = None) -> Steps[str]:
        """``running``, ``pending`` or ``absent``."""
        queue = (yield from self.queue(deadline=deadline, retry=retry, timeout=timeout)) or {}
        if any(len(item) > 1 and item[1] == prompt_id for item in queue.get("queue_running", [])):
            return "running"
        if any(len(item) > 1 and item[1] == prompt_id for item in queue.get("queue_pending", [])):
            return "pending"
        return "absent"

    def interrupt(self, prompt_id: str | None = None, retry: RetryPolicy | None = None,
                  timeout: float | None = None) -> Steps[None]:
        """Interrupt ``prompt_id`` if it is running (no id: whatever runs; avoid that)."""
        yield from self.request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {}, retry=retry,
                                timeout=timeout)

    def delete_queued(self, prompt_ids: list[str], retry: RetryPolicy | None = None,
                      timeout: float | None = None) -> Steps[None]:
        yield from self.request("POST", "/queue", json={"delete": list(prompt_ids)}, retry=retry, timeout=timeout)

    def upload_image(self, path: str | Path, *, subfolder: str = "", overwrite: bool = False,
                     folder_type: str = "input") -> Steps[str]:
        """Upload a local file; returns the name to put in a LoadImage-style input.

        The server may rename on a clash (``name (1).png``): always use the returned name. The
        upload is safe to retry: identical bytes under the same name are not stored twice.
        """
        data = {"type": folder_type, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        reply = yield from self.request("POST", "/upload/image", data=data, files={"image": Path(path)})
        try:
            answer = reply.json()
            name = answer["name"]
        except (ValueError, KeyError, TypeError):
            raise ProtocolError(f"POST /upload/image returned an unexpected reply ({reply.text[:60]!r})") from None
        folder = answer.get("subfolder") or ""
        return f"{folder}/{name}" if folder else name

    def cancel(self, prompt_id: str) -> Steps[str]:
        """Cancel only our prompt: delete it from the queue and interrupt it if running.

        Both calls are targeted by id, so the order (delete, then interrupt) is race free: a
        pending prompt cannot start after it was deleted, and an interrupt naming a prompt that
        is not running does nothing. Returns the queue state seen before (``running``, ``pending``,
        ``absent``, or ``unknown`` when the server could not be asked). Never waits long.
        """
        short = min(self.timeout, CANCEL_TIMEOUT)
        try:
            state = yield from self.queue_state(prompt_id, retry=QUICK, timeout=short)
        except (ServerUnreachableError, ProtocolError):
            state = "unknown"
        try:
            if state in ("pending", "unknown"):
                yield from self.delete_queued([prompt_id], retry=QUICK, timeout=short)
            if state in ("running", "unknown"):
                yield from self.interrupt(prompt_id, retry=QUICK, timeout=short)
            elif state == "pending" and (yield from self.queue_state(prompt_id, retry=QUICK, timeout=short)) == "running":
                yield from self.interrupt(prompt_id, retry=QUICK, timeout=short)  # it started between our two calls
        except (ServerUnreachableError, ProtocolError) as exc:
            log.warning("could not cancel prompt %s: %s", prompt_id, exc)
        return state
