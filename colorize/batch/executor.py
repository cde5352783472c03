"""The interface both executors share: submit tasks, poll for events, close.

The driver (:mod:`colorize.batch.runner`) submits tasks in the order videos should run and
polls; an executor reports frames as workers make them and each task's result once. When a
worker dies the executor runs the task again elsewhere (up to its retry limit) and reports only
the attempt that finished, or one failure when every attempt died.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

from colorize.batch.tasks import Task, TaskResult


@dataclass(frozen=True)
class FramesDone:
    task_id: str
    frames: int


@dataclass(frozen=True)
class TaskFinished:
    result: TaskResult


Event = Union[FramesDone, TaskFinished]

#: Attempts after the first when the worker running a task dies.
DEFAULT_MAX_RETRIES = 3


class Executor(Protocol):
    #: How many tasks run at once (for estimates and progress).
    workers: int
    #: What ran where, for the summary (e.g. "2 local workers on cpu").
    description: str

    def submit(self, task: Task) -> None:
        ...

    def poll(self, timeout: float) -> list[Event]:
        """Events since the last call, waiting up to ``timeout`` seconds for the first."""
        ...

    def close(self, abort: bool = False) -> None:
        """Release the workers; ``abort`` stops running tasks too (Ctrl-C)."""
        ...


def worker_died(task: Task, attempts: int, detail: str = "") -> TaskResult:
    """The result reported when every attempt at ``task`` lost its worker."""
    suffix = f" ({detail})" if detail else ""
    return TaskResult(task.task_id, ok=False, exit_code=1,
                      error=f"the worker running it died {attempts} time(s){suffix}")
