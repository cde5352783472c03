"""A registry workflow id and its parameters -> an API-format workflow, checked as ``comfy-run`` checks it.

Shared by the two example services (``bot_worker.py``, ``registry_api.py``). It uses only the public
API of ``runner``: the registry's typed parameters (a mapping of JSON values, as a web form sends
them, checked as ``comfy-run run ID --param name=value`` checks them) and ``prepare_workflow``, the
preflight against the server's ``/object_info`` the command line runs. So a service refuses bad
parameters with the command line's messages, and queues nothing for a request that cannot work.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, TypeVar

from runner import AsyncComfyClient
from runner.registry import Entry, Registry
from runner.workflow import prepare_workflow
from runner.workflow.errors import WorkflowError

T = TypeVar("T")


class InvalidParameters(Exception):
    """The request cannot run: ``problems`` has one line each, worded as ``comfy-run`` words them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check_parameters(registry: Registry, workflow_id: str, params: dict[str, Any]) -> Entry:
    """The registry entry, once every parameter has been found valid (no request is made)."""
    try:
        entry = registry.get(workflow_id)
        entry.overrides(params)
    except WorkflowError as error:
        raise InvalidParameters(error.problems) from None
    return entry


async def build_workflow(client: AsyncComfyClient, registry: Registry, workflow_id: str,
                         params: dict[str, Any]) -> dict[str, Any]:
    """The API-format workflow to queue: parameters checked, the graph checked against the server
    (missing nodes or models), and only then local files uploaded.

    ``prepare_workflow`` is the command line's synchronous preparation; it runs in a thread for
    the moment it takes, and its uploads and model listings go through the async client on this
    event loop.
    """
    entry = check_parameters(registry, workflow_id, params)
    sets, inputs, _ = entry.overrides(params)
    object_info = await client.object_info()
    loop = asyncio.get_running_loop()

    def on_loop(call: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, loop).result()

    try:
        prepared = await asyncio.to_thread(
            prepare_workflow, entry.template(), object_info, sets, inputs,
            upload=lambda path, **options: on_loop(client.upload_image(path, **options)),
            models=lambda folder: on_loop(client.models(folder)), server=client.server)
    except WorkflowError as error:
        raise InvalidParameters(error.problems) from None
    return prepared.api
