"""The plain ComfyUI endpoints (server info, queue, history, uploads) and cancelling one prompt."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from runner.client.http import HttpClient
from runner.client.retry import Deadline, RetryPolicy
from runner.errors import ProtocolError, ServerUnreachableError

log = logging.getLogger(__name__)


class ServerApi(HttpClient):
    """Typed calls on top of :class:`HttpClient`; nothing here watches a run (see :class:`ComfyClient`)."""

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
