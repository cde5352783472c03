"""What the server says about a prompt: the POST reply, the finished run, and its problems as lines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from runner.errors import (
    CancelledByUserError,
    ExecutionError,
    OutOfMemoryError,
    PromptInterruptedError,
    RunTimeoutError,
)
from runner.events import FinishState, ImageOutput

_OOM_MARKERS = ("out of memory", "outofmemory", "allocation on device", "cuda error: out of memory")


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
    # Output images that came as websocket frames (SaveImageWebsocket): history does not list them.
    images: list[ImageOutput] = field(default_factory=list)

    @property
    def outputs(self) -> dict[str, Any]:
        """The history entry's outputs (files on the server, texts); see also :attr:`images`."""
        return (self.history or {}).get("outputs") or {}

    @property
    def has_outputs(self) -> bool:
        return bool(self.outputs or self.images)

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


def timings_of(entry: dict[str, Any] | None, started_wall: float) -> dict[str, float]:
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


def outcome_from_history(entry: dict[str, Any], titles: dict[str, str] | None = None
                         ) -> tuple[FinishState, str, dict[str, Any] | None]:
    """``(state, message, error payload)`` of a finished prompt, from its history entry's status."""
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    last_kind, last_data = (messages[-1][0], messages[-1][1]) if messages and len(messages[-1]) == 2 else (None, {})
    if last_kind == "execution_error":
        state = FinishState.OUT_OF_MEMORY if is_out_of_memory(last_data) else FinishState.EXECUTION_ERROR
        return state, describe_execution_error(last_data, titles), last_data
    if last_kind == "execution_interrupted":
        node, node_type = last_data.get("node_id"), last_data.get("node_type")
        where = f" while node {node} ({node_type}) ran" if node else ""
        return FinishState.INTERRUPTED, f"interrupted on the server{where}", last_data
    if status.get("status_str", "success") == "success" and status.get("completed", True):
        return FinishState.SUCCESS, "success", None
    return FinishState.EXECUTION_ERROR, f"the server reported status {status.get('status_str')!r}", None
