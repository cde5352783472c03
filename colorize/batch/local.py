"""Local executor: worker processes on this machine, one per GPU (or one on CPU).

Each worker is a spawned process that loads the model once and then takes tasks one at a time
from the driver over its own pipe, in the order they were submitted. A pipe per worker (rather
than a shared queue) means a worker killed mid-write cannot block the others, and its closed
pipe tells the driver at once that it died; the task it held is then given to a fresh worker,
up to ``max_retries`` times.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from colorize.batch.executor import (
    DEFAULT_MAX_RETRIES,
    Event,
    FramesDone,
    TaskFinished,
    worker_died,
)
from colorize.batch.tasks import Task, WorkerSettings

logger = logging.getLogger(__name__)


def default_worker_count(device: str) -> tuple[int, list[str | None]]:
    """One worker per visible GPU (pinned to it), else one worker using every core."""
    if device in ("auto", "cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count:
            return count, [str(i) for i in range(count)]
    return 1, [None]


@dataclass
class _Worker:
    slot: int
    process: Any
    conn: Connection
    task: Task | None = None
    pid: int | None = None
    alive: bool = True


@dataclass
class LocalExecutor:
    settings: WorkerSettings
    workers: int = 0                     # 0: one per GPU, or one on CPU
    max_retries: int = DEFAULT_MAX_RETRIES
    #: Called as on_started(task, pid) when a worker takes a task (logs, tests).
    on_started: Callable[[Task, int], None] | None = None
    description: str = ""
    #: Task ids given to a fresh worker after theirs died (one entry per retry).
    retried: list[str] = field(default_factory=list)
    _gpus: list[str | None] = field(default_factory=list)
    _slots: list[_Worker | None] = field(default_factory=list)
    _pending: deque = field(default_factory=deque)
    _attempts: dict[str, int] = field(default_factory=dict)
    _events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        count, gpus = default_worker_count(self.settings.device)
        if self.workers <= 0:
            self.workers = count
        self._gpus = [gpus[i % len(gpus)] for i in range(self.workers)]
        on = "GPU " + ", ".join(g for g in self._gpus if g) if any(self._gpus) else "cpu"
        self.description = f"{self.workers} local worker(s) on {on}"
        self._slots = [None] * self.workers
        self._context = multiprocessing.get_context("spawn")

    # -- interface ----------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        self._pending.append(task)
        self._dispatch()

    def poll(self, timeout: float) -> list[Event]:
        self._dispatch()
        live = [w for w in self._slots if w is not None and w.alive]
        if not self._events and live:
            for conn in wait([w.conn for w in live], timeout=timeout):
                self._read(next(w for w in live if w.conn is conn))
        self._reap()
        self._dispatch()
        events, self._events = self._events, []
        return events

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after their current task, or at once with ``abort``."""
        for worker in self._slots:
            if worker is None or not worker.alive:
                continue
            if abort:
                worker.process.kill()
                continue
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._slots:
            if worker is None:
                continue
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._slots = [None] * self.workers

    # -- internals ----------------------------------------------------------------------------

    def _start(self, slot: int) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        threads = None
        if self._gpus[slot] is None and self.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
        process = self._context.Process(
            target=_worker_main, args=(child, self.settings, self._gpus[slot], threads),
            name=f"colorize-batch-{slot}", daemon=True)
        process.start()
        child.close()
        worker = _Worker(slot, process, parent)
        self._slots[slot] = worker
        logger.debug("worker %d started (pid %s)", slot, process.pid)
        return worker

    def _dispatch(self) -> None:
        for slot in range(self.workers):
            if not self._pending:
                return
            worker = self._slots[slot]
            if worker is None or not worker.alive:
                worker = self._start(slot)
            if worker.task is not None:
                continue
            task = self._pending.popleft()
            worker.task = task
            self._attempts[task.task_id] = self._attempts.get(task.task_id, 0) + 1
            try:
                worker.conn.send(task)
            except OSError:
                self._lost(worker)

    def _read(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._lost(worker)

    def _handle(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "started":
            worker.pid = message[2]
            if self.on_started is not None and worker.task is not None:
                self.on_started(worker.task, message[2])
        elif kind == "frames":
            self._events.append(FramesDone(message[1], message[2]))
        elif kind == "done":
            result = message[1]
            if worker.task is not None and worker.task.task_id == result.task_id:
                worker.task = None
                self._events.append(TaskFinished(result))

    def _reap(self) -> None:
        for worker in self._slots:
            if worker is not None and worker.alive and not worker.process.is_alive():
                self._read(worker)   # whatever it sent before dying still counts
                self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        worker.alive = False
        worker.process.join(timeout=5)
        task, worker.task = worker.task, None
        code = worker.process.exitcode
        if task is None:
            return
        attempts = self._attempts.get(task.task_id, 1)
        logger.warning("worker %d (pid %s) died (exit code %s) while running %s: attempt %d "
                       "of %d", worker.slot, worker.pid, code, task.job.input.name, attempts,
                       self.max_retries + 1)
        if attempts <= self.max_retries:
            self.retried.append(task.task_id)
            self._pending.appendleft(task)
        else:
            self._events.append(TaskFinished(worker_died(task, attempts, f"exit code {code}")))


def _worker_main(conn: Connection, settings: WorkerSettings, gpu: str | None,
                 threads: int | None) -> None:
    """Body of a worker process: before torch is imported, pin the GPU and the thread count."""
    # Ctrl-C reaches the whole process group: the driver decides, then stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from colorize.batch.tasks import context_for, execute_task

    context = context_for(settings)
    context.report_frames = lambda task_id, frames: conn.send(("frames", task_id, frames))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        conn.send(("started", task.task_id, os.getpid()))
        result = execute_task(context, task)
        conn.send(("done", result))
