"""Running one workflow many times with different overrides, across one or several servers.

``comfy-run batch WORKFLOW_OR_ID --params params.jsonl`` reads one JSON object of overrides per
line, validates every job before queueing anything, then keeps every server busy: each job goes
to the server with the fewest pending prompts. Results land in ``OUT/<job id>/`` and in one
combined ``batch_manifest.json``, rewritten atomically after every job, so a rerun skips the jobs
whose outputs are already there. A job's id is a hash of the workflow and its overrides, so the
same line always maps to the same job, and duplicate lines run once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from runner.client import ComfyClient, RetryPolicy
from runner.errors import ComfyRunError, ExitCode
from runner.client.outputs import collect_outputs
from runner.registry import Entry, Registry, load_registry, resolve_workflow
from runner.workflow import PreparedWorkflow, load_workflow, prepare_workflow
from runner.workflow.errors import WorkflowError

log = logging.getLogger(__name__)

MANIFEST_NAME = "batch_manifest.json"
STATUS_SUCCESS = "success"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"  # already done in an earlier run


@dataclass
class JobOutcome:
    """What running one prepared job on one server produced."""

    prompt_id: str | None
    status: str  # STATUS_SUCCESS or a failure word ("execution_error", "timed_out", ...)
    outputs: list[dict[str, Any]] = field(default_factory=list)  # each has at least "path" (relative to out)
    error: str | None = None


class BatchBackend(Protocol):
    """What the batch runner needs from a server connection (implemented over ComfyClient)."""

    def object_info(self, server: str) -> dict[str, Any]: ...

    def queue_remaining(self, server: str) -> int: ...

    def upload(self, server: str, path: Path) -> str: ...

    def models(self, server: str, folder: str) -> list[str]: ...

    def run(self, server: str, prepared: PreparedWorkflow, out_dir: Path) -> JobOutcome: ...


@dataclass
class BatchJob:
    """One line of the params file."""

    line: int
    overrides: dict[str, Any]
    job_id: str
    sets: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)


@dataclass
class JobRecord:
    """One row of the summary and of the combined manifest."""

    job_id: str
    line: int
    overrides: dict[str, Any]
    status: str
    server: str | None = None
    prompt_id: str | None = None
    seconds: float = 0.0
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BatchResult:
    """Everything a batch run did; ``records`` are in params-file order."""

    records: list[JobRecord]
    manifest_path: Path
    seconds: float

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status not in (STATUS_SUCCESS, STATUS_SKIPPED)]


# ----- params file and job identity -----


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_identity(workflow: dict[str, Any], overrides: dict[str, Any]) -> str:
    """Stable id of a job: the same workflow with the same overrides always gives the same id."""
    digest = hashlib.sha256()
    digest.update(canonical_json(workflow).encode())
    digest.update(b"\0")
    digest.update(canonical_json(overrides).encode())
    return digest.hexdigest()[:16]


def read_params(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, overrides)`` per non-empty, non-comment line; all bad lines reported at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowError(f"cannot read params file {path}: {exc.strerror or exc}") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name} line {number}: not valid JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{path.name} line {number}: expected a JSON object of overrides, got {type(value).__name__}")
            continue
        rows.append((number, value))
    if problems:
        raise WorkflowError(problems)
    if not rows:
        raise WorkflowError(f"params file {path} has no jobs (one JSON object per line)")
    return rows


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def build_jobs(workflow: dict[str, Any], entry: Entry | None, rows: list[tuple[int, dict[str, Any]]]) -> list[BatchJob]:
    """Turn params rows into jobs: registry parameters or ``TARGET.INPUT`` keys become overrides."""
    jobs: list[BatchJob] = []
    problems: list[str] = []
    for number, overrides in rows:
        job = BatchJob(number, overrides, job_identity(workflow, overrides))
        if entry is not None:
            try:
                job.sets, job.inputs, _ = entry.overrides([f"{k}={_as_text(v)}" for k, v in overrides.items()])
            except WorkflowError as exc:
                problems += [f"line {number}: {p}" for p in exc.problems]
                continue
        else:
            for key, value in overrides.items():
                if key.startswith("input:"):  # {"input:LoadImage.image": "local.png"} uploads a file
                    job.inputs.append(f"{key[len('input:'):]}={value}")
                else:
                    job.sets.append(f"{key}={json.dumps(value)}")
        jobs.append(job)
    if problems:
        raise WorkflowError(problems)
    return jobs


# ----- manifest -----


def load_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"jobs": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkflowError(
            f"existing batch manifest {path} is unreadable ({exc}); move it away to start the batch afresh"
        ) from None
    data.setdefault("jobs", {})
    return data


def write_json_atomic(path: Path, data: Any) -> None:
    """Write beside the target and rename, so a crash never leaves a half-written manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def already_done(record: dict[str, Any] | None, out_dir: Path) -> bool:
    """A job counts as done when the manifest says success and every output file is still there."""
    if not record or record.get("status") != STATUS_SUCCESS:
        return False
    for output in record.get("outputs") or []:
        rel = output.get("path")
        if rel is None:
            continue  # text outputs have no file
        target = out_dir / rel
        if not target.is_file():
            return False
        if output.get("size") is not None and target.stat().st_size != output["size"]:
            return False
    return True


# ----- scheduling -----


class ServerPicker:
    """Chooses the server with the least pending work: its queue plus what we sent and is not yet visible."""

    UNREACHABLE_LOAD = 1 << 30
    RETRY_DOWN_AFTER_S = 10.0  # a server that did not answer is not asked again for this long

    def __init__(self, servers: list[str], queue_remaining: Callable[[str], int]) -> None:
        self.servers = servers
        self._queue_remaining = queue_remaining
        self._in_flight = {server: 0 for server in servers}
        self._assigned = {server: 0 for server in servers}
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self) -> str:
        remote: dict[str, int] = {}
        for server in self.servers:
            if self._down_until.get(server, 0.0) > time.monotonic():
                remote[server] = self.UNREACHABLE_LOAD
                continue
            try:
                remote[server] = int(self._queue_remaining(server))
            except Exception as exc:  # noqa: BLE001 - an unreachable server just ranks last
                log.debug("queue of %s unknown: %s", server, exc)
                remote[server] = self.UNREACHABLE_LOAD
                self._down_until[server] = time.monotonic() + self.RETRY_DOWN_AFTER_S
        with self._lock:
            # Our own in-flight jobs may not show in the server's queue yet: count the larger.
            # Ties go to the server that got fewest jobs so far, so equal servers share evenly.
            def load(server: str) -> tuple[int, int, int]:
                return (max(remote[server], self._in_flight[server]), self._in_flight[server], self._assigned[server])

            chosen = min(self.servers, key=load)
            self._in_flight[chosen] += 1
            self._assigned[chosen] += 1
            return chosen

    def release(self, server: str) -> None:
        with self._lock:
            self._in_flight[server] -= 1


@dataclass
class BatchOptions:
    servers: list[str]
    out_dir: Path
    concurrency: int | None = None  # default: 2 jobs per server
    on_record: Callable[[JobRecord], None] | None = None  # progress callback (CLI prints a line)


def run_batch(
    source: str | Path | dict[str, Any],
    params: Path | list[tuple[int, dict[str, Any]]],
    backend: BatchBackend,
    options: BatchOptions,
    registry: Registry | None = None,
) -> BatchResult:
    """Validate every job, then run the ones not yet done; returns the per-job records."""
    started = time.monotonic()
    if not options.servers:
        raise WorkflowError("batch needs at least one --server")
    entry: Entry | None = None
    if isinstance(source, dict):
        workflow = source
    else:
        resolved, entry = resolve_workflow(str(source), registry or load_registry())
        workflow = resolved if isinstance(resolved, dict) else load_workflow(resolved)
    rows = read_params(params) if isinstance(params, Path) else params
    jobs = build_jobs(workflow, entry, rows)

    object_info = backend.object_info(options.servers[0])
    listings: dict[tuple[str, str], list[str]] = {}

    def models_on(server: str) -> Callable[[str], list[str]]:
        def listing(folder: str) -> list[str]:
            if (server, folder) not in listings:  # one request per folder, not one per job
                listings[(server, folder)] = list(backend.models(server, folder))
            return listings[(server, folder)]

        return listing

    problems: list[str] = []
    for job in jobs:  # dry run: every job validated before anything is uploaded or queued
        try:
            prepare_workflow(workflow, object_info, job.sets, job.inputs, lambda p: p.name,
                             models=models_on(options.servers[0]), server=options.servers[0])
        except WorkflowError as exc:
            problems += [f"line {job.line}: {p}" for p in exc.problems]
    if problems:
        raise WorkflowError(problems)

    out_dir = options.out_dir
    manifest_path = out_dir / MANIFEST_NAME
    manifest = load_manifest(manifest_path)
    manifest["workflow"] = str(source) if not isinstance(source, dict) else "<dict>"
    lock = threading.Lock()
    records: dict[str, JobRecord] = {}
    unique: list[BatchJob] = []
    for job in jobs:
        if job.job_id in records:
            log.info("line %d repeats line %d; it runs once", job.line, records[job.job_id].line)
            continue
        previous = manifest["jobs"].get(job.job_id)
        if already_done(previous, out_dir):
            records[job.job_id] = JobRecord(job.job_id, job.line, job.overrides, STATUS_SKIPPED,
                                            server=previous.get("server"), prompt_id=previous.get("prompt_id"),
                                            outputs=previous.get("outputs") or [])
            if options.on_record:
                options.on_record(records[job.job_id])
        else:
            records[job.job_id] = JobRecord(job.job_id, job.line, job.overrides, "pending")
            unique.append(job)

    picker = ServerPicker(options.servers, backend.queue_remaining)
    object_infos: dict[str, dict[str, Any]] = {options.servers[0]: object_info}

    def run_one(job: BatchJob) -> None:
        server = picker.acquire()
        record = records[job.job_id]
        record.server = server
        begin = time.monotonic()
        try:
            if server not in object_infos:
                object_infos[server] = backend.object_info(server)
            prepared = prepare_workflow(
                workflow, object_infos[server], job.sets, job.inputs,
                lambda path: backend.upload(server, path), models=models_on(server), server=server,
            )
            outcome = backend.run(server, prepared, out_dir / job.job_id)
            record.prompt_id, record.status, record.error = outcome.prompt_id, outcome.status, outcome.error
            record.outputs = [
                {**o, "path": f"{job.job_id}/{o['path']}"} if o.get("path") else o for o in outcome.outputs
            ]
        except Exception as exc:  # noqa: BLE001 - one failed job must not stop the batch
            record.status = _status_for(exc)
            record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.debug("job %s failed", job.job_id, exc_info=True)
        finally:
            picker.release(server)
            record.seconds = round(time.monotonic() - begin, 3)
        with lock:
            manifest["jobs"][job.job_id] = record.to_json()
            write_json_atomic(manifest_path, manifest)
        if options.on_record:
            options.on_record(record)

    workers = options.concurrency or 2 * len(options.servers)
    if unique:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="batch") as pool:
            try:
                list(pool.map(run_one, unique))
            except BaseException:
                # Ctrl-C (or a bug): jobs not started yet are dropped instead of run to the end;
                # the ones running finish and are recorded.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    with lock:
        write_json_atomic(manifest_path, manifest)
    ordered = sorted(records.values(), key=lambda r: r.line)
    return BatchResult(ordered, manifest_path, round(time.monotonic() - started, 3))


def _status_for(exc: BaseException) -> str:
    code = getattr(exc, "exit_code", None)
    if isinstance(exc, ComfyRunError) and code in ExitCode._value2member_map_:
        return ExitCode(code).name.lower()  # e.g. "validation", "unreachable"
    return STATUS_FAILED


class ClientBackend:
    """:class:`BatchBackend` over :class:`runner.ComfyClient`: one client per worker thread and server."""

    def __init__(self, token: str | None = None, timeout: float | None = None, poll_interval: float = 1.0,
                 retry: RetryPolicy | None = None) -> None:
        self.token = token
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.retry = retry  # None: the client's default backoff
        self._local = threading.local()
        self._all: list[ComfyClient] = []
        self._lock = threading.Lock()

    def _client(self, server: str) -> ComfyClient:
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        if server not in clients:  # the client is not thread-safe, so each thread gets its own
            clients[server] = ComfyClient(server, self.token, poll_interval=self.poll_interval, retry=self.retry)
            with self._lock:
                self._all.append(clients[server])
        return clients[server]

    def object_info(self, server: str) -> dict[str, Any]:
        return self._client(server).object_info()

    def queue_remaining(self, server: str) -> int:
        # One quick try: a server that does not answer simply ranks last for a while.
        reply = self._client(server).get_json("/prompt", retry=RetryPolicy(retries=0))
        return int(((reply or {}).get("exec_info") or {}).get("queue_remaining", 0))

    def upload(self, server: str, path: Path) -> str:
        return self._client(server).upload_image(path)

    def models(self, server: str, folder: str) -> list[str]:
        return self._client(server).models(folder)

    def run(self, server: str, prepared: PreparedWorkflow, out_dir: Path) -> JobOutcome:
        client = self._client(server)
        result = client.run(prepared.api, timeout=self.timeout)
        outputs: list[dict[str, Any]] = []
        if result.has_outputs:  # history files, and images that came over the websocket
            manifest = collect_outputs(client, result, out_dir, titles=prepared.titles,
                                       class_types=prepared.class_types, overrides=prepared.overrides)
            outputs = manifest.outputs
        return JobOutcome(result.prompt_id, result.state.value, outputs, None if result.ok else result.message)

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                client.close()
            self._all.clear()


def summary_table(result: BatchResult) -> str:
    """A plain-text table: one row per job, then totals per server and per status."""
    header = f"{'line':>5}  {'job':16}  {'status':16}  {'server':28}  {'sec':>7}  {'files':>5}"
    lines = [header, "-" * len(header)]
    for r in result.records:
        files = sum(1 for o in r.outputs if o.get("path"))
        lines.append(f"{r.line:>5}  {r.job_id:16}  {r.status:16}  {(r.server or '-')[:28]:28}  {r.seconds:7.2f}  {files:>5}")
        if r.error:
            lines.append(f"{'':>5}  error: {r.error}")
    by_status: dict[str, int] = {}
    by_server: dict[str, int] = {}
    for r in result.records:
        by_status[r.status] = by_status.get(r.status, 0) + 1
        if r.status == STATUS_SUCCESS and r.server:
            by_server[r.server] = by_server.get(r.server, 0) + 1
    lines.append("")
    lines.append("jobs: " + ", ".join(f"{count} {status}" for status, count in sorted(by_status.items())))
    if by_server:
        lines.append("ran per server: " + ", ".join(f"{server} {count}" for server, count in sorted(by_server.items())))
    lines.append(f"manifest: {result.manifest_path}  ({result.seconds:.2f} s)")
    return "\n".join(lines)
