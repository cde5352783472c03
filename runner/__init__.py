"""comfy-run: a race-safe ComfyUI client (Python API and command line)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.client import ComfyClient, Deadline, RetryPolicy, RunResult, SubmitResult
from runner.errors import ComfyRunError, ExitCode
from runner.events import Event, Finished, FinishState

if TYPE_CHECKING:
    from runner.client.aio import AsyncComfyClient

__all__ = [
    "AsyncComfyClient",
    "ComfyClient",
    "ComfyRunError",
    "Deadline",
    "Event",
    "ExitCode",
    "Finished",
    "FinishState",
    "RetryPolicy",
    "RunResult",
    "SubmitResult",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncComfyClient":  # loaded on first use, see runner.client
        from runner.client.aio import AsyncComfyClient

        return AsyncComfyClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
