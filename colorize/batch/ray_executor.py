"""Ray executor: one Ray task per video (or per shot), on this machine or a cluster.

The only module that imports Ray (``pip install 'colorize-video[ray]'``). ``--ray local``
starts Ray here, ``--ray auto`` joins the cluster this machine belongs to, and
``--ray ray://HOST:10001`` (or any address ``ray.init`` takes) a remote one.

* Colorize tasks ask for one GPU each when the cluster has GPUs, else for ``cpus_per_task``
  CPUs (default: all CPUs of the smallest node, one worker per machine like the local path).
  Cut detection and stitching ask for one CPU.
* A worker process keeps its model between tasks (:func:`colorize.batch.tasks.context_for`
  caches it per process, and Ray reuses worker processes), so the checkpoint is read once per
  worker, not once per video. Paths (weights, inputs, outputs) must be the same on every node:
  shared storage.
* A task whose worker dies is run again by Ray (``max_retries``); user errors are returned as
  failed results, never raised, so they are not retried. Results come back to the driver,
  which alone writes ``batch.jsonl``.
* Frames reach the driver through a small counter actor, for the progress line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from colorize.batch.executor import (
    DEFAULT_MAX_RETRIES,
    Event,
    FramesDone,
    TaskFinished,
    worker_died,
)
from colorize.batch.tasks import Task, TaskResult, WorkerSettings
from colorize.errors import ColorizeError

logger = logging.getLogger(__name__)

#: Seconds between a task's frame reports to the counter actor.
REPORT_INTERVAL_S = 0.5


class RayUnavailableError(ColorizeError):
    """Ray is not installed, or the cluster cannot be reached."""

    exit_code = 6


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "--ray needs Ray: pip install 'colorize-video[ray]' (or run without --ray)") from None
    return ray


class FrameCounter:
    """Actor body: frames made per task since the driver last asked."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, task_id: str, frames: int) -> None:
        self._counts[task_id] = self._counts.get(task_id, 0) + frames

    def take(self) -> dict[str, int]:
        counts, self._counts = self._counts, {}
        return counts


def colorize_task(settings: WorkerSettings, task: Task, counter: Any) -> TaskResult:
    """Body of every Ray task (its process title reads ``ray::colorize_task`` while it runs)."""
    from colorize.batch.tasks import context_for, execute_task

    context = context_for(settings)
    pending = {"frames": 0, "since": time.monotonic()}

    def report(task_id: str, frames: int) -> None:
        pending["frames"] += frames
        if time.monotonic() - pending["since"] >= REPORT_INTERVAL_S:
            counter.add.remote(task_id, pending["frames"])
            pending["frames"], pending["since"] = 0, time.monotonic()

    context.report_frames = report
    result = execute_task(context, task)
    if pending["frames"]:
        counter.add.remote(task.task_id, pending["frames"])
    return result


@dataclass
class RayExecutor:
    settings: WorkerSettings
    address: str = "local"
    cpus_per_task: int | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    workers: int = 0
    description: str = ""
    _owns_ray: bool = False
    _running: dict[Any, Task] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            self._connect(ray)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus and self.settings.device in ("auto", "cuda"):
            # max_calls=0: Ray ends a GPU task's worker after each call by default, which would
            # read the checkpoint once per video instead of once per worker.
            model_options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1, "max_calls": 0}
            self.workers = gpus
            what = f"{gpus} GPU(s)"
        else:
            cpus = self.cpus_per_task or _smallest_node_cpus(ray)
            model_options = {"num_cpus": cpus}
            self.workers = max(1, int(resources.get("CPU", 1)) // cpus)
            what = f"{int(resources.get('CPU', 0))} CPU(s), {cpus} per task"
        self.description = f"Ray ({self.address}): {self.workers} worker(s) on {what}"
        remote = ray.remote(colorize_task)
        self._model_task = remote.options(max_retries=self.max_retries, **model_options)
        self._light_task = remote.options(max_retries=self.max_retries, num_cpus=1)
        self._counter = ray.remote(num_cpus=0)(FrameCounter).remote()

    def _connect(self, ray: Any) -> None:
        try:
            if self.address == "local":
                ray.init(include_dashboard=False, logging_level=logging.WARNING)
            else:
                ray.init(address=self.address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayUnavailableError(f"cannot start or reach Ray at {self.address!r}: "
                                      f"{str(error).splitlines()[0]}") from None
        self._owns_ray = True

    # -- interface ----------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        function = self._model_task if task.kind in ("video", "shot") else self._light_task
        self._running[function.remote(self.settings, task, self._counter)] = task

    def poll(self, timeout: float) -> list[Event]:
        ray = self._ray
        events: list[Event] = []
        if self._running:
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running),
                                timeout=timeout)
            for ref in ready:
                task = self._running.pop(ref)
                events.append(TaskFinished(self._result(ref, task)))
        for task_id, frames in ray.get(self._counter.take.remote()).items():
            events.insert(0, FramesDone(task_id, frames))
        return events

    def _result(self, ref: Any, task: Task) -> TaskResult:
        ray = self._ray
        try:
            return ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.OutOfMemoryError) as error:
            return worker_died(task, self.max_retries + 1, type(error).__name__)
        except ray.exceptions.RayError as error:
            return TaskResult(task.task_id, ok=False, exit_code=1,
                              error=f"Ray error: {str(error).splitlines()[0]}")

    def close(self, abort: bool = False) -> None:
        ray = self._ray
        if abort:
            for ref in self._running:
                ray.cancel(ref, force=True)
        self._running.clear()
        if self._owns_ray:
            ray.shutdown()


def _smallest_node_cpus(ray: Any) -> int:
    cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes()
            if node.get("Alive") and node["Resources"].get("CPU")]
    return max(1, min(cpus)) if cpus else 1
