"""``ComfyClient``: the blocking client, the protocol core run over requests and the websockets sync client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

from runner.client.actions import Download, OpenSocket, Receive, Send, Sleep
from runner.client.base import ClientBase
from runner.client.drive import run_steps, stream_steps
from runner.client.endpoints import Steps
from runner.client.http import SyncHttp
from runner.client.outputs import Manifest, output_steps
from runner.client.protocol import CancelRequested
from runner.client.results import RunResult, SubmitResult
from runner.client.retry import Deadline
from runner.client.urls import websocket_url
from runner.client.ws import EventSocket
from runner.events import Event, Finished, Queued


class ComfyClient(ClientBase):
    """Submit, watch, cancel and collect ComfyUI prompts (settings: see :class:`~runner.client.base.ClientBase`).

    >>> with ComfyClient("http://127.0.0.1:8188") as client:          # doctest: +SKIP
    ...     result = client.run(api_workflow, timeout=600)
    ...     result.raise_for_state()

    The client is not thread-safe: use one client per thread (they are cheap), except for
    :meth:`request_cancel`, which any thread or a signal handler may call.
    """

    def _open_transports(self, token: str | None, max_connections: int) -> None:
        self._http = SyncHttp(self.server, token, max_connections=max_connections)
        self._socket = EventSocket(websocket_url(self.server, self.client_id), token,
                                   connect_timeout=self.protocol.connect_timeout, retry=self.retry,
                                   enabled=self.protocol.use_websocket)

    def __enter__(self) -> "ComfyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close()
        self._http.close()

    # ------------------------------------------------------------------ the transport
    def _perform(self, action: Any) -> Any:
        if isinstance(action, Send):
            return self._http.send(action)
        if isinstance(action, Receive):
            frame, note = self._socket.receive(action.timeout)
            message = None if frame is None else self.protocol.route(frame, (action.prompt_id,))[0]
            return message, note
        if isinstance(action, Sleep):
            time.sleep(action.seconds)
            return None
        if isinstance(action, OpenSocket):
            return self._socket.open()
        if isinstance(action, Download):
            return self._http.download(action)
        raise TypeError(f"unknown action {action!r}")

    def drive(self, steps: Steps[Any]) -> Any:
        """Run protocol steps (e.g. ``client.protocol.history(pid)``) with this client's transport."""
        return run_steps(steps, self._perform)

    # ------------------------------------------------------------------ endpoints
    def request(self, method: str, path: str, **options: Any) -> Any:
        """One HTTP request with the client's retries (see :meth:`ServerCalls.request`); returns a Reply."""
        return self.drive(self.protocol.request(method, path, **options))

    def get_json(self, path: str, **options: Any) -> Any:
        return self.drive(self.protocol.get_json(path, **options))

    def system_stats(self) -> dict[str, Any]:
        return self.drive(self.protocol.system_stats())

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        return self.drive(self.protocol.object_info(class_type))

    def models(self, folder: str) -> list[str]:
        """File names in a model folder; an unknown folder is an empty list."""
        return self.drive(self.protocol.models(folder))

    def queue(self, **options: Any) -> dict[str, Any]:
        return self.drive(self.protocol.queue(**options))

    def history(self, prompt_id: str, **options: Any) -> dict[str, Any] | None:
        """The history entry of ``prompt_id``, or None while it is not (yet) in history."""
        return self.drive(self.protocol.history(prompt_id, **options))

    def queue_state(self, prompt_id: str, **options: Any) -> str:
        """``running``, ``pending`` or ``absent``."""
        return self.drive(self.protocol.queue_state(prompt_id, **options))

    def interrupt(self, prompt_id: str | None = None, **options: Any) -> None:
        self.drive(self.protocol.interrupt(prompt_id, **options))

    def delete_queued(self, prompt_ids: list[str], **options: Any) -> None:
        self.drive(self.protocol.delete_queued(prompt_ids, **options))

    def upload_image(self, path: str | Path, **options: Any) -> str:
        """Upload a local file; returns the name to put in a LoadImage-style input (see ServerCalls)."""
        return self.drive(self.protocol.upload_image(path, **options))

    def cancel(self, prompt_id: str) -> str:
        """Cancel only our prompt (delete it from the queue, interrupt it by id); returns its state before."""
        return self.drive(self.protocol.cancel(prompt_id))

    def download_outputs(self, result: RunResult, out_dir: str | Path, **options: Any) -> Manifest:
        """Download every output of ``result`` into ``out_dir`` and write ``manifest.json`` there
        (options: see :func:`runner.client.outputs.output_steps`)."""
        return self.drive(output_steps(self.protocol, result, out_dir, **options))

    # ------------------------------------------------------------------ runs
    def submit(self, workflow: dict[str, Any], **options: Any) -> SubmitResult:
        """Queue an API-format workflow under our own ``prompt_id`` (see :meth:`ComfyProtocol.submit`).

        Raises :class:`PromptValidationError` on a 400 (nothing queued)."""
        return self.drive(self.protocol.submit(workflow, **options))

    def watch(self, prompt_id: str, *, timeout: float | None = None, deadline: Deadline | None = None,
              workflow: dict[str, Any] | None = None) -> Iterator[Event]:
        """Yield the events of ``prompt_id`` until it ends; the last one is :class:`Finished`.

        On deadline the prompt is cancelled and ``Finished(state=TIMED_OUT)`` is yielded; after
        :meth:`request_cancel` the iterator raises ``KeyboardInterrupt``.
        """
        try:
            yield from stream_steps(self.protocol.watch(prompt_id, timeout=timeout, deadline=deadline,
                                                        workflow=workflow), self._perform)
        except CancelRequested:
            raise KeyboardInterrupt from None

    def wait(self, prompt_id: str, *, timeout: float | None = None, on_event: Callable[[Event], None] | None = None,
             workflow: dict[str, Any] | None = None) -> RunResult:
        """Block until ``prompt_id`` ends; Ctrl-C (or :meth:`request_cancel`) cancels our prompt and
        returns state CANCELLED."""
        finished: Finished | None = None
        try:
            for event in self.watch(prompt_id, timeout=timeout, workflow=workflow):
                if on_event is not None:
                    on_event(event)
                if isinstance(event, Finished):
                    finished = event
        except KeyboardInterrupt:
            finished = self.protocol.cancelled(prompt_id, self.cancel(prompt_id))
            if on_event is not None:
                on_event(finished)
        assert finished is not None
        return finished.result

    def run(self, workflow: dict[str, Any], *, timeout: float | None = None,
            on_event: Callable[[Event], None] | None = None, prompt_id: str | None = None) -> RunResult:
        """Submit and wait. Validation errors raise :class:`PromptValidationError`."""
        deadline = Deadline(timeout)
        own_id = prompt_id or self.protocol.new_prompt_id()
        try:
            submitted = self.submit(workflow, prompt_id=own_id, deadline=deadline)
        except CancelRequested:  # asked before the POST, or between its retries: cancel what got queued
            return self.protocol.cancelled(own_id, self.cancel(own_id)).result
        if on_event is not None:
            on_event(Queued(prompt_id=submitted.prompt_id, number=submitted.number, node_errors=submitted.node_errors))
        return self.wait(submitted.prompt_id, timeout=deadline.remaining(), on_event=on_event, workflow=workflow)
