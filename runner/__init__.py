"""comfy-run: a race-safe ComfyUI client (Python API and command line)."""

from __future__ import annotations

from runner.client import ComfyClient, Deadline, RetryPolicy, RunResult, SubmitResult
from runner.errors import ComfyRunError, ExitCode
from runner.events import Event, Finished, FinishState

__all__ = [
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
