"""A chat bot's generation worker: a persistent job queue run on a ComfyUI server.

This is the shape of the worker behind a bot that sells image generations and has moved off a
hosted API onto its own ComfyUI servers:

* jobs wait in a persistent queue (SQLite, standard library): a registry workflow id, its
  parameters, the user who asked, and a time limit;
* the worker claims one job at a time in a transaction, builds the workflow (parameters checked
  as ``comfy-run run`` checks them), submits it with ``runner.AsyncComfyClient`` under a prompt id
  it stored first, forwards the run's progress to a callback, and downloads the outputs;
* a job can be cancelled by its id from anywhere (``JobQueue.request_cancel``, for example by the
  bot's ``/cancel`` command in another process); only that job's prompt is cancelled;
* every failure ends in one decision, ``refund`` or ``retry``, taken from the client's error kind
  (see :data:`DECISIONS`); a job retried too often is refunded;
* a job is never run twice: the prompt id is stored in the same transaction that claims the job,
  so a worker that finds a job claimed by a dead worker (its lease ran out) asks the server's
  history and queue about that prompt id, and waits for it or takes its result, and submits it
  only when the server never received it.

Run it::

    python examples/bot_worker.py --db jobs.sqlite add 42 solid-invert size=64
    python examples/bot_worker.py --db jobs.sqlite run --server http://127.0.0.1:8188 --until-empty
    python examples/bot_worker.py --db jobs.sqlite cancel JOB_ID
    python examples/bot_worker.py --db jobs.sqlite show

It uses only the public API of ``runner`` (and ``generation.py`` beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sqlite3
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import InvalidParameters, build_workflow  # noqa: E402

from runner import AsyncComfyClient, FinishState  # noqa: E402
from runner.errors import (  # noqa: E402
    ComfyRunError,
    OutputError,
    PromptValidationError,
    ServerUnreachableError,
)
from runner.events import Event, Finished, Progress  # noqa: E402
from runner.registry import Registry, load_registry  # noqa: E402

log = logging.getLogger("bot_worker")

#: What a failure means for the user's credit. A failure that will not go away by itself (the
#: request is wrong, the graph fails, the user cancelled, it ran past its time) is refunded; one
#: that may pass (server down, busy GPU, someone interrupted the server) is tried again.
DECISIONS = {
    "unreachable": "retry",
    "protocol": "retry",        # the server answered nonsense (a proxy, a restart): try again
    "out_of_memory": "retry",   # the GPU was shared with other work; a later run may fit
    "interrupted": "retry",     # interrupted on the server by someone else
    "output": "retry",          # ran, but the outputs could not be fetched
    "rejected": "refund",       # validation: the same request fails the same way
    "node_error": "refund",
    "timeout": "refund",        # the prompt was cancelled at the job's time limit
    "cancelled": "refund",
}

#: RunResult states that are failures, by error kind.
STATE_KINDS = {
    FinishState.EXECUTION_ERROR: "node_error",
    FinishState.OUT_OF_MEMORY: "out_of_memory",
    FinishState.INTERRUPTED: "interrupted",
    FinishState.TIMED_OUT: "timeout",
    FinishState.CANCELLED: "cancelled",
    FinishState.UNREACHABLE: "unreachable",
    FinishState.VALIDATION_ERROR: "rejected",
}


@dataclass
class Job:
    id: str
    user_id: str
    workflow: str
    params: dict[str, Any]
    timeout: float
    prompt_id: str
    attempts: int
    started: float
    recovered: bool = False  # claimed from a worker whose lease ran out: its prompt may exist


@dataclass
class Outcome:
    """How a job ended, for the bot to tell its user (and its billing)."""

    job_id: str
    user_id: str
    status: str                  # done | failed | retrying
    decision: str | None = None  # refund | retry (None when done)
    kind: str | None = None      # the error kind (see DECISIONS)
    message: str = ""
    outputs: list[str] = field(default_factory=list)


class JobQueue:
    """Jobs in one SQLite file, safe for several worker processes at once.

    Every change is one transaction. ``BEGIN IMMEDIATE`` takes the database's write lock before
    reading, so two workers can never claim the same job. The calls are short and made on the
    worker's event loop; a worker that shares its loop with a busy bot would run them in a thread.
    """

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        workflow TEXT NOT NULL,
        params TEXT NOT NULL,
        timeout REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',       -- queued | running | done | failed
        ready_at REAL NOT NULL,                     -- a retried job waits until then
        prompt_id TEXT,                             -- stored before the prompt is posted
        worker TEXT,
        lease_until REAL,
        started REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        decision TEXT,
        kind TEXT,
        message TEXT,
        outputs TEXT,
        created REAL NOT NULL,
        finished REAL
    )"""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Autocommit mode: transactions are begun explicitly, so their extent is visible here.
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(self.SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add(self, user_id: str, workflow: str, params: dict[str, Any], *, timeout: float = 600.0) -> str:
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._transaction() as db:
            db.execute("INSERT INTO jobs (id, user_id, workflow, params, timeout, ready_at, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (job_id, str(user_id), workflow, json.dumps(params), timeout, now, now))
        return job_id

    def claim(self, worker: str, lease_s: float) -> Job | None:
        """The next job for ``worker``: first one whose worker's lease ran out, then the oldest ready."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE (state = 'running' AND lease_until < ?) "
                "OR (state = 'queued' AND ready_at <= ?) "
                "ORDER BY state = 'queued', created LIMIT 1", (now, now)).fetchone()
            if row is None:
                return None
            recovered = row["state"] == "running"
            prompt_id = row["prompt_id"] if recovered else str(uuid.uuid4())
            started = row["started"] if recovered else now
            attempts = row["attempts"] + (0 if recovered else 1)
            db.execute("UPDATE jobs SET state = 'running', worker = ?, lease_until = ?, prompt_id = ?, "
                       "started = ?, attempts = ? WHERE id = ?",
                       (worker, now + lease_s, prompt_id, started, attempts, row["id"]))
        return Job(id=row["id"], user_id=row["user_id"], workflow=row["workflow"],
                   params=json.loads(row["params"]), timeout=row["timeout"], prompt_id=prompt_id,
                   attempts=attempts, started=started, recovered=recovered)

    def renew(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Extend ``worker``'s lease on a running job; False if the job is no longer its own."""
        with self._transaction() as db:
            changed = db.execute("UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ? AND state = 'running'",
                                 (time.time() + lease_s, job_id, worker)).rowcount
        return changed == 1

    def request_cancel(self, job_id: str) -> bool:
        """Cancel a job by id. A waiting job ends at once (refunded); a running one is flagged and
        its worker cancels its prompt within a poll interval. False if the job has ended already."""
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] in ("done", "failed"):
                return False
            if row["state"] == "queued":
                db.execute("UPDATE jobs SET state = 'failed', decision = 'refund', kind = 'cancelled', "
                           "message = 'cancelled before it started', finished = ? WHERE id = ?",
                           (time.time(), job_id))
            else:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return True

    def cancel_requested(self, job_id: str) -> bool:
        row = self._db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def finish(self, job: Job, worker: str, outcome: Outcome) -> bool:
        """Record a job's end; only its current owner may (a worker that lost its lease may not)."""
        state = "done" if outcome.status == "done" else "failed"
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET state = ?, decision = ?, kind = ?, message = ?, outputs = ?, finished = ? "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                (state, outcome.decision, outcome.kind, outcome.message, json.dumps(outcome.outputs),
                 time.time(), job.id, worker)).rowcount
        return changed == 1

    def retry_later(self, job: Job, worker: str, outcome: Outcome, delay_s: float) -> bool:
        """Put a job back in the queue for a new attempt, with a new prompt id when it is claimed."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET state = 'queued', ready_at = ?, prompt_id = NULL, worker = NULL, "
                "lease_until = NULL, started = NULL, kind = ?, message = ? "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                (time.time() + delay_s, outcome.kind, outcome.message, job.id, worker)).rowcount
        return changed == 1

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row(row)

    def all(self) -> list[dict[str, Any]]:
        return [_row(row) for row in self._db.execute("SELECT * FROM jobs ORDER BY created")]

    def pending(self) -> int:
        """Jobs not ended yet (queued, waiting for a retry, or running)."""
        return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]


def _row(row: sqlite3.Row) -> dict[str, Any]:
    record = dict(row)
    record["params"] = json.loads(record["params"])
    record["outputs"] = json.loads(record["outputs"]) if record["outputs"] else []
    return record


@dataclass
class WorkerSettings:
    lease_s: float = 30.0        # a job whose worker was silent this long is taken over
    poll_s: float = 0.5          # between queue, lease and cancel checks
    max_attempts: int = 3        # a job to retry is refunded after this many attempts
    retry_delay_s: float = 10.0  # a retried job waits this long in the queue


OnProgress = Callable[[Job, Event], Any]
OnFinished = Callable[[Outcome], Any]


class BotWorker:
    """Claims jobs from a :class:`JobQueue` and runs them on one ComfyUI server, one at a time.

    ``on_progress(job, event)`` gets every event of a job's run (``Progress`` has ``value`` and
    ``max``); ``on_finished(outcome)`` gets each job's end. Either may be a coroutine function.
    """

    def __init__(self, queue: JobQueue, client: AsyncComfyClient, out_dir: str | Path, *,
                 registry: Registry | None = None, worker_id: str | None = None,
                 on_progress: OnProgress | None = None, on_finished: OnFinished | None = None,
                 settings: WorkerSettings | None = None) -> None:
        self.queue = queue
        self.client = client
        self.out_dir = Path(out_dir)
        self.registry = registry or load_registry()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_progress = on_progress
        self.on_finished = on_finished
        self.settings = settings or WorkerSettings()

    async def run(self, *, until_empty: bool = False) -> None:
        """Process jobs until cancelled (or, with ``until_empty``, until none is left to do)."""
        while True:
            job = self.queue.claim(self.worker_id, self.settings.lease_s)
            if job is None:
                if until_empty and self.queue.pending() == 0:
                    return
                await asyncio.sleep(self.settings.poll_s)
                continue
            await self.process(job)

    async def process(self, job: Job) -> Outcome | None:
        """Run one claimed job to its end and record the outcome (None if the job was lost)."""
        attempt = asyncio.ensure_future(self._attempt(job))
        supervisor = asyncio.ensure_future(self._supervise(job, attempt))
        try:
            outcome = await attempt
        except asyncio.CancelledError:
            reason = supervisor.result() if supervisor.done() else None
            if reason is None:
                raise  # the worker itself is being stopped; the job's lease will run out
            if reason == "lease lost":
                log.warning("job %s: lease lost to another worker; it is theirs now", job.id)
                return None
            outcome = self._failure(job, "cancelled", "cancelled on request")
        finally:
            supervisor.cancel()
        return await self._record(job, outcome)

    async def _supervise(self, job: Job, attempt: asyncio.Future) -> str | None:
        """Keep the lease alive and watch for a cancel request; says why it cancelled the attempt."""
        while not attempt.done():
            await asyncio.sleep(self.settings.poll_s)
            if self.queue.cancel_requested(job.id):
                attempt.cancel()  # the client cancels our prompt on the server
                return "cancel requested"
            if not self.queue.renew(job.id, self.worker_id, self.settings.lease_s):
                attempt.cancel()
                return "lease lost"
        return None

    async def _attempt(self, job: Job) -> Outcome:
        remaining = max(0.0, job.started + job.timeout - time.time())

        async def forward(event: Event) -> None:
            if self.on_progress is not None and not isinstance(event, Finished):
                result = self.on_progress(job, event)
                if asyncio.iscoroutine(result):
                    await result

        try:
            if job.recovered and await self._reached_server(job.prompt_id):
                log.info("job %s: prompt %s of an earlier worker found on the server; waiting for it",
                         job.id, job.prompt_id)
                result = await self.client.wait(job.prompt_id, timeout=remaining, on_event=forward)
            else:
                workflow = await build_workflow(self.client, self.registry, job.workflow, job.params)
                result = await self.client.run(workflow, timeout=remaining, on_event=forward,
                                               prompt_id=job.prompt_id)
            if not result.ok:
                return self._failure(job, STATE_KINDS.get(result.state, "node_error"),
                                     result.message or result.state.value)
            manifest = await self.client.download_outputs(result, self.out_dir / job.id)
        except InvalidParameters as error:
            return self._failure(job, "rejected", "; ".join(error.problems))
        except PromptValidationError as error:
            return self._failure(job, "rejected", "; ".join(error.lines) or str(error))
        except ServerUnreachableError as error:
            return self._failure(job, "unreachable", str(error))
        except OutputError as error:
            return self._failure(job, "output", str(error))
        except ComfyRunError as error:
            return self._failure(job, "protocol", str(error))
        outputs = [str(self.out_dir / job.id / item["path"]) for item in manifest.outputs]
        return Outcome(job.id, job.user_id, "done", message="done", outputs=outputs)

    async def _reached_server(self, prompt_id: str) -> bool:
        """Whether the server has this prompt: finished (in history), running or pending."""
        if await self.client.history(prompt_id) is not None:
            return True
        return await self.client.queue_state(prompt_id) != "absent"

    def _failure(self, job: Job, kind: str, message: str) -> Outcome:
        decision = DECISIONS[kind]
        if decision == "retry" and job.attempts >= self.settings.max_attempts:
            decision, message = "refund", f"{message} (gave up after {job.attempts} attempts)"
        return Outcome(job.id, job.user_id, "retrying" if decision == "retry" else "failed",
                       decision=decision, kind=kind, message=message)

    async def _record(self, job: Job, outcome: Outcome) -> Outcome:
        if outcome.status == "retrying":
            owned = self.queue.retry_later(job, self.worker_id, outcome, self.settings.retry_delay_s)
        else:
            owned = self.queue.finish(job, self.worker_id, outcome)
        if not owned:
            log.warning("job %s was taken over by another worker; its outcome is theirs to record", job.id)
            return outcome
        log.info("job %s (user %s): %s%s", job.id, job.user_id, outcome.status,
                 f", {outcome.decision} ({outcome.kind}: {outcome.message})" if outcome.decision else "")
        if self.on_finished is not None:
            result = self.on_finished(outcome)
            if asyncio.iscoroutine(result):
                await result
        return outcome


# ---------------------------------------------------------------------- command line
def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
    return params


def _print_progress(job: Job, event: Event) -> None:
    if isinstance(event, Progress):
        print(f"job {job.id}: {event.value:g}/{event.max:g}", file=sys.stderr)


async def _run_worker(args: argparse.Namespace, queue: JobQueue) -> None:
    async with AsyncComfyClient(args.server) as client:
        worker = BotWorker(queue, client, args.out,
                           settings=WorkerSettings(lease_s=args.lease, poll_s=args.poll),
                           on_progress=_print_progress,
                           on_finished=lambda outcome: print(json.dumps(asdict(outcome)), flush=True))
        await worker.run(until_empty=args.until_empty)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the SQLite job queue (created if absent)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="queue a job; prints its id")
    add.add_argument("user")
    add.add_argument("workflow", help="a registry workflow id ('comfy-run list')")
    add.add_argument("params", nargs="*", help="NAME=VALUE registry parameters")
    add.add_argument("--timeout", type=float, default=600.0, help="seconds the job may take")
    run = commands.add_parser("run", help="process jobs")
    run.add_argument("--server", default=os.environ.get("COMFYUI_API_URL", "http://127.0.0.1:8188"))
    run.add_argument("--out", default="bot-outputs", help="folder for each job's outputs")
    run.add_argument("--until-empty", action="store_true", help="stop when no job is left")
    run.add_argument("--lease", type=float, default=30.0, help="seconds before a silent worker's job is taken over")
    run.add_argument("--poll", type=float, default=0.5, help="seconds between queue and cancel checks")
    cancel = commands.add_parser("cancel", help="cancel a job by id")
    cancel.add_argument("job_id")
    show = commands.add_parser("show", help="print jobs as JSON lines")
    show.add_argument("job_id", nargs="?")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    queue = JobQueue(args.db)
    try:
        if args.command == "add":
            print(queue.add(args.user, args.workflow, _parse_params(args.params), timeout=args.timeout))
        elif args.command == "cancel":
            if not queue.request_cancel(args.job_id):
                print(f"error: no running or queued job {args.job_id}", file=sys.stderr)
                return 1
        elif args.command == "show":
            for record in [queue.get(args.job_id)] if args.job_id else queue.all():
                print(json.dumps(record))
        else:
            asyncio.run(_run_worker(args, queue))
    finally:
        queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
