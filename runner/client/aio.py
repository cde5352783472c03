"""``AsyncComfyClient``: the asyncio client, the protocol core run over httpx2 and the websockets asyncio client.

Same methods and guarantees as :class:`runner.ComfyClient` (listed in :mod:`runner.client`), as
coroutines, and ``watch`` is an async iterator of the same events. No thread is started: many runs
can be awaited at once on one event loop and share one HTTP pool and one websocket. Cancelling the
task that awaits :meth:`AsyncComfyClient.wait` or :meth:`AsyncComfyClient.run` (``task.cancel()``,
``asyncio.wait_for``, ``asyncio.timeout``) cancels our prompt on the server before the
``CancelledError`` goes on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from runner.client.actions import Download, OpenSocket, Receive, Send, Sleep
from runner.client.aio_http import AsyncHttp
from runner.client.aio_ws import AsyncEventSocket
from runner.client.base import ClientBase
from runner.client.drive import arun_steps, astream_steps
from runner.client.endpoints import Steps
from runner.client.outputs import Manifest, output_steps
from runner.client.protocol import CancelRequested
from runner.client.results import RunResult, SubmitResult
from runner.client.retry import Deadline
from runner.client.urls import websocket_url
from runner.events import Event, Finished, Queued

log = logging.getLogger(__name__)


class AsyncComfyClient(ClientBase):
    """Submit, watch, cancel and collect ComfyUI prompts from asyncio code.

    >>> async with AsyncComfyClient("http://127.0.0.1:8188") as client:   # doctest: +SKIP
    ...     result = await client.run(api_workflow, timeout=600)
    ...     manifest = await client.download_outputs(result, "outputs/")

    One client may run many prompts at once (``asyncio.gather``), on the event loop it was first
    used on. Settings: see :class:`~runner.client.base.ClientBase`.
    """

    def _open_transports(self, token: str | None, max_connections: int) -> None:
        self._http = AsyncHttp(self.server, token, max_connections=max_connections)
        self._socket = AsyncEventSocket(websocket_url(self.server, self.client_id), token, self.protocol,
                                        connect_timeout=self.protocol.connect_timeout)
        # Cancels still running after the task that asked for them was cancelled (kept referenced).
        self._cancelling: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> "AsyncComfyClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._cancelling:
            await asyncio.gather(*self._cancelling, return_exceptions=True)
        await self._socket.close()
        await self._http.close()

    # ------------------------------------------------------------------ the transport
    async def _perform(self, action: Any) -> Any:
        if isinstance(action, Send):
            return await self._http.send(action)
        if isinstance(action, Receive):
            return await self._socket.receive(action.prompt_id, action.timeout)
        if isinstance(action, Sleep):
            await asyncio.sleep(action.seconds)
            return None
        if isinstance(action, OpenSocket):
            return await self._socket.open()
        if isinstance(action, Download):
            return await self._http.download(action)
        raise TypeError(f"unknown action {action!r}")

    async def drive(self, steps: Steps[Any]) -> Any:
        """Run protocol steps (e.g. ``client.protocol.history(pid)``) with this client's transport."""
        return await arun_steps(steps, self._perform)

    # ------------------------------------------------------------------ endpoints
    async def request(self, method: str, path: str, **options: Any) -> Any:
        """One HTTP request with the client's retries (see :meth:`ServerCalls.request`); returns a Reply."""
        return await self.drive(self.protocol.request(method, path, **options))

    async def get_json(self, path: str, **options: Any) -> Any:
        return await self.drive(self.protocol.get_json(path, **options))

    async def system_stats(self) -> dict[str, Any]:
        return await self.drive(self.protocol.system_stats())

    async def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        return await self.drive(self.protocol.object_info(class_type))

    async def models(self, folder: str) -> list[str]:
        """File names in a model folder; an unknown folder is an empty list."""
        return await self.drive(self.protocol.models(folder))

    async def queue(self, **options: Any) -> dict[str, Any]:
        return await self.drive(self.protocol.queue(**options))

    async def history(self, prompt_id: str, **options: Any) -> dict[str, Any] | None:
        """The history entry of ``prompt_id``, or None while it is not (yet) in history."""
        return await self.drive(self.protocol.history(prompt_id, **options))

    async def queue_state(self, prompt_id: str, **options: Any) -> str:
        """``running``, ``pending`` or ``absent``."""
        return await self.drive(self.protocol.queue_state(prompt_id, **options))

    async def interrupt(self, prompt_id: str | None = None, **options: Any) -> None:
        await self.drive(self.protocol.interrupt(prompt_id, **options))

    async def delete_queued(self, prompt_ids: list[str], **options: Any) -> None:
        await self.drive(self.protocol.delete_queued(prompt_ids, **options))

    async def upload_image(self, path: str | Path, **options: Any) -> str:
        """Upload a local file; returns the name to put in a LoadImage-style input (see ServerCalls)."""
        return await self.drive(self.protocol.upload_image(path, **options))

    async def cancel(self, prompt_id: str) -> str:
        """Cancel only our prompt (delete it from the queue, interrupt it by id); returns its state before."""
        return await self.drive(self.protocol.cancel(prompt_id))

    async def download_outputs(self, result: RunResult, out_dir: str | Path, **options: Any) -> Manifest:
        """Download every output of ``result`` into ``out_dir`` and write ``manifest.json`` there
        (options: see :func:`runner.client.outputs.output_steps`)."""
        return await self.drive(output_steps(self.protocol, result, out_dir, **options))

    # ------------------------------------------------------------------ runs
    async def submit(self, workflow: dict[str, Any], **options: Any) -> SubmitResult:
        """Queue an API-format workflow under our own ``prompt_id`` (see :meth:`ComfyProtocol.submit`).

        Raises :class:`PromptValidationError` on a 400 (nothing queued)."""
        return await self.drive(self.protocol.submit(workflow, **options))

    async def watch(self, prompt_id: str, *, timeout: float | None = None, deadline: Deadline | None = None,
                    workflow: dict[str, Any] | None = None) -> AsyncIterator[Event]:
        """Yield the events of ``prompt_id`` until it ends; the last one is :class:`Finished`.

        On deadline the prompt is cancelled and ``Finished(state=TIMED_OUT)`` is yielded. Leaving the
        loop early (or cancelling it) only stops watching; :meth:`wait` cancels the prompt too.
        """
        self._socket.watch(prompt_id)  # before the core reads the backlog: no frame falls between
        try:
            async for event in astream_steps(self.protocol.watch(prompt_id, timeout=timeout, deadline=deadline,
                                                                 workflow=workflow), self._perform):
                yield event
        finally:
            self._socket.unwatch(prompt_id)

    async def wait(self, prompt_id: str, *, timeout: float | None = None,
                   on_event: Callable[[Event], Any] | None = None, workflow: dict[str, Any] | None = None) -> RunResult:
        """Wait until ``prompt_id`` ends. ``on_event`` may be a function or a coroutine function.

        If the awaiting task is cancelled, our prompt is cancelled on the server and the
        ``CancelledError`` is raised again; after :meth:`request_cancel` the state is CANCELLED.
        """
        finished: Finished | None = None
        try:
            events = self.watch(prompt_id, timeout=timeout, workflow=workflow)
            try:
                async for event in events:
                    await _deliver(on_event, event)
                    if isinstance(event, Finished):
                        finished = event
            finally:
                await events.aclose()
        except CancelRequested:
            finished = self.protocol.cancelled(prompt_id, await self.cancel(prompt_id))
            await _deliver(on_event, finished)
        except asyncio.CancelledError:
            await self._cancel_behind(prompt_id)
            raise
        assert finished is not None
        return finished.result

    async def run(self, workflow: dict[str, Any], *, timeout: float | None = None,
                  on_event: Callable[[Event], Any] | None = None, prompt_id: str | None = None) -> RunResult:
        """Submit and wait. Validation errors raise :class:`PromptValidationError`. A task cancelled
        during the POST still cancels the prompt, which the server may have queued already."""
        deadline = Deadline(timeout)
        own_id = prompt_id or self.protocol.new_prompt_id()
        # The POST is shielded: a task cancelled mid-POST lets it reach its reply (the server may be
        # queueing it right now), then cancels our id, so the prompt cannot start after we left.
        posting = asyncio.ensure_future(self.submit(workflow, prompt_id=own_id, deadline=deadline))
        try:
            submitted = await asyncio.shield(posting)
        except asyncio.CancelledError:
            await self._cancel_behind(own_id, after=posting)
            raise
        except CancelRequested:  # asked before the POST, or between its retries: cancel what got queued
            return self.protocol.cancelled(own_id, await self.cancel(own_id)).result
        await _deliver(on_event, Queued(prompt_id=submitted.prompt_id, number=submitted.number,
                                        node_errors=submitted.node_errors))
        return await self.wait(submitted.prompt_id, timeout=deadline.remaining(), on_event=on_event, workflow=workflow)

    async def _cancel_behind(self, prompt_id: str, after: asyncio.Future[Any] | None = None) -> None:
        """Cancel ``prompt_id`` on the server for a task being cancelled (once ``after``, its POST,
        is done): shielded, so a second cancellation of the task does not stop it half-way."""
        async def cancel() -> None:
            if after is not None:
                await asyncio.wait([after])
                if not after.cancelled():
                    after.exception()  # retrieved: a failed POST has nothing to cancel, cancel() finds that
            try:
                await self.cancel(prompt_id)
            except Exception as exc:  # noqa: BLE001 - e.g. the client closed under us; nobody awaits this
                log.warning("could not cancel prompt %s: %s", prompt_id, exc)

        task = asyncio.ensure_future(cancel())
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)
        await asyncio.shield(task)


async def _deliver(on_event: Callable[[Event], Any] | None, event: Event) -> None:
    if on_event is not None:
        outcome = on_event(event)
        if asyncio.iscoroutine(outcome):
            await outcome
