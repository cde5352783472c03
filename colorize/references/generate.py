"""Colour references made on ComfyUI servers: ``colorize keyframes ... --generate WORKFLOW --server URL``.

Each group's gray still (``DIR/gray/ref_<still>.png``, see :mod:`colorize.references.picker`) goes
through an image workflow (:mod:`~colorize.references.image_workflow`) on one of the servers, and
the picture that comes back becomes ``DIR/ref_<frame>.png`` for every keyframe of the group:
exactly what ``colorize --ref-dir DIR`` reads. By default only the colour (LAB a, b) of the
generated picture is kept, on the still's own luminance (:func:`colorize.color.keep_luminance`);
``keep_generated_luma`` keeps the picture whole. Either way it is resized to the frame size.

The work goes through ``runner``'s batch runner: every still is validated (preflight against each
server's ``/object_info`` and model lists) before anything is queued, and the stills are spread
over the servers, each to the one with the least pending work. A still is done when its colour
files are written (atomically, as they arrive), so an interrupted run continues where it stopped:
a keyframe whose ``ref_<frame>.png`` exists is skipped unless ``regenerate`` names it. A server
that stops answering is not asked again in this run; what finished before is kept.
"""

from __future__ import annotations

import io
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from colorize.errors import ColorizeError, OutputWriteError, ReferenceUnreadableError
from colorize.footage.report import reference_file_name
from colorize.references.store import KEYFRAMES_FILE, atomic_write
from runner.batch import BatchBackend, BatchOptions, ClientBackend, JobOutcome, JobRecord, run_batch
from runner.errors import ComfyRunError, ExitCode, ServerUnreachableError
from runner.events import FinishState
from runner.workflow import PreparedWorkflow

logger = logging.getLogger(__name__)

#: Exit code of a failed run whose status is a finish state rather than an exception's.
_STATE_EXIT_CODES = {
    FinishState.EXECUTION_ERROR.value: ExitCode.EXECUTION,
    FinishState.OUT_OF_MEMORY.value: ExitCode.OUT_OF_MEMORY,
    FinishState.INTERRUPTED.value: ExitCode.INTERRUPTED,
    FinishState.TIMED_OUT.value: ExitCode.TIMEOUT,
    FinishState.CANCELLED.value: ExitCode.CANCELLED,
    FinishState.UNREACHABLE.value: ExitCode.UNREACHABLE,
    FinishState.VALIDATION_ERROR.value: ExitCode.VALIDATION,
}
#: ``comfy-run`` codes that ``colorize keyframes`` already uses for its own errors (8 shots file,
#: 10 input not found, 11 no video stream) move to free codes; the others keep their meaning.
_MOVED_EXIT_CODES = {ExitCode.TIMEOUT: 27, ExitCode.PROTOCOL: 28, ExitCode.OUTPUT: 29}


def keyframes_exit_code(runner_code: int) -> int:
    """The ``colorize keyframes`` exit code for a ``comfy-run`` one (listed in
    ``colorize.references.cli.GENERATE_EXIT_CODES``)."""
    try:
        return _MOVED_EXIT_CODES.get(ExitCode(runner_code), int(runner_code))
    except ValueError:
        return int(runner_code)


class GenerationError(ColorizeError):
    """Generation failed; built from ``comfy-run``'s exit code for the same failure (3 preflight,
    9 server unreachable, ...), moved where ``colorize keyframes`` uses it already."""

    def __init__(self, message: str, runner_code: int = int(ExitCode.ERROR)) -> None:
        super().__init__(message)
        self.exit_code = keyframes_exit_code(runner_code)


class RegenerateError(ColorizeError):
    """``--regenerate`` names a frame that is not a keyframe."""

    exit_code = 2


@dataclass(frozen=True)
class GenerateSettings:
    """What ``--generate`` was asked to do."""

    workflow: str  # registry id or workflow file
    servers: tuple[str, ...]
    prompt: str | None = None
    seed: int | None = None
    regenerate: frozenset[int] = frozenset()
    keep_generated_luma: bool = False
    token: str | None = None
    timeout: float | None = None  # seconds per still; None waits as long as it takes
    concurrency: int | None = None  # stills in flight at once; default 2 per server


@dataclass(frozen=True)
class StillJob:
    """One gray still to colour, and the keyframes whose colour files it writes this run."""

    still: int  # the frame that names the still (its group's first keyframe)
    gray: Path
    targets: tuple[int, ...]


@dataclass
class GenerateResult:
    """What a run did: stills coloured (and already done before), files written."""

    total: int  # stills of every group
    skipped: int  # stills whose colour files all existed already
    generated: list[int] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def plan_stills(folder: Path, groups: Sequence[dict[str, Any]], regenerate: Iterable[int] = ()) -> list[StillJob]:
    """The stills that need colouring, from ``keyframes.json``'s ``groups`` (``still``, ``serves``).

    A keyframe is redone when its colour file is missing or ``regenerate`` names it; a still is
    coloured when any of its keyframes is redone, and writes only those keyframes' files (a
    file kept or painted by hand in the same group stays as it is).
    """
    served = sorted(frame for group in groups for frame in group["serves"])
    unknown = sorted(set(regenerate) - set(served))
    if unknown:
        listed = ", ".join(map(str, served[:12])) + (" ..." if len(served) > 12 else "")
        raise RegenerateError(f"--regenerate {unknown[0]}: frame {unknown[0]} is not a keyframe of "
                              f"{folder / KEYFRAMES_FILE} (its keyframes: {listed})")
    wanted = set(regenerate)
    jobs = []
    for group in sorted(groups, key=lambda g: min(g["serves"])):
        targets = tuple(sorted(f for f in group["serves"]
                               if f in wanted or not (folder / reference_file_name(f)).is_file()))
        if targets:
            jobs.append(StillJob(min(group["serves"]), folder / group["still"], targets))
    return jobs


def colour_reference(generated: np.ndarray, gray: np.ndarray, keep_generated_luma: bool) -> np.ndarray:
    """The reference for one keyframe: uint8 RGB at ``gray``'s size (the frame size)."""
    height, width = gray.shape[:2]
    if keep_generated_luma:
        from PIL import Image

        picture = Image.fromarray(generated)
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
        return np.asarray(picture.convert("RGB"))
    from colorize.color import keep_luminance

    return keep_luminance(generated, gray)


def _read_image(path: Path) -> np.ndarray:
    """uint8 RGB; raises ``OSError`` / ``ValueError`` for a file Pillow cannot decode."""
    from PIL import Image

    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def _png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


class _LostServers:
    """A :class:`BatchBackend` that stops calling a server once it failed to answer.

    The client already retried before giving up, so each later still would only wait through
    the same retries again; they fail at once instead (and another server takes new ones).
    """

    def __init__(self, backend: BatchBackend) -> None:
        self._backend = backend
        self.lost: dict[str, str] = {}
        self._lock = threading.Lock()

    def _call(self, server: str, call: Callable[[], Any]) -> Any:
        if server in self.lost:
            raise ServerUnreachableError(self.lost[server])
        try:
            return call()
        except ServerUnreachableError as error:
            with self._lock:
                self.lost.setdefault(server, str(error).splitlines()[0] if str(error) else f"{server} is unreachable")
            raise

    def object_info(self, server: str) -> dict[str, Any]:
        return self._call(server, lambda: self._backend.object_info(server))

    def queue_remaining(self, server: str) -> int:
        return self._call(server, lambda: self._backend.queue_remaining(server))

    def upload(self, server: str, path: Path) -> str:
        return self._call(server, lambda: self._backend.upload(server, path))

    def models(self, server: str, folder: str) -> list[str]:
        return self._call(server, lambda: self._backend.models(server, folder))

    def run(self, server: str, prepared: PreparedWorkflow, out_dir: Path) -> JobOutcome:
        outcome = self._call(server, lambda: self._backend.run(server, prepared, out_dir))
        if outcome.status == FinishState.UNREACHABLE.value:
            with self._lock:
                self.lost.setdefault(server, outcome.error or f"{server} stopped answering")
        return outcome


def _exit_code_of(status: str) -> int:
    if status in _STATE_EXIT_CODES:
        return int(_STATE_EXIT_CODES[status])
    if status.upper() in ExitCode.__members__:
        return int(ExitCode[status.upper()])
    return int(ExitCode.ERROR)


def generate_references(
    folder: Path,
    groups: Sequence[dict[str, Any]],
    settings: GenerateSettings,
    *,
    backend: BatchBackend | None = None,
    on_progress: Callable[[int, int, StillJob], None] | None = None,
) -> GenerateResult:
    """Colour the stills of ``folder`` that need it; see the module docstring.

    ``groups``: ``keyframes.json``'s groups (``still``, ``serves``). ``on_progress(done, total,
    job)`` is called after each still's files are written. Raises :class:`GenerationError` (with
    ``comfy-run``'s exit code) when the workflow, a server or a generated picture fails; stills
    finished before that are kept.
    """
    from colorize.references.image_workflow import resolve_image_workflow

    if not settings.servers:
        raise GenerationError("--generate needs at least one --server URL", int(ExitCode.USAGE))
    jobs = plan_stills(folder, groups, settings.regenerate)
    result = GenerateResult(total=len(groups), skipped=len(groups) - len(jobs))
    if not jobs:
        return result
    for job in jobs:
        if not job.gray.is_file():
            raise ReferenceUnreadableError(f"gray still {job.gray} is missing: run 'colorize keyframes' "
                                           "for this folder again to write it")
    owned = backend is None
    client_backend = ClientBackend(token=settings.token, timeout=settings.timeout) if owned else None
    guarded = _LostServers(client_backend if client_backend is not None else backend)  # type: ignore[arg-type]
    try:
        object_info = guarded.object_info(settings.servers[0])
        workflow = resolve_image_workflow(settings.workflow, object_info, prompt=settings.prompt, seed=settings.seed)
        by_line = {line: job for line, job in enumerate(jobs, start=1)}
        rows = [(line, workflow.overrides(job.gray, settings.prompt, settings.seed)) for line, job in by_line.items()]
        lock = threading.Lock()
        failures: list[ColorizeError] = []

        try:  # downloads land here first; hidden, so --ref-dir never reads them
            scratch_folder = tempfile.TemporaryDirectory(prefix=".generate-", dir=folder)
        except OSError as error:
            raise OutputWriteError(f"cannot write to {folder}: {error.strerror or error}") from None
        with scratch_folder as scratch:
            def finished(record: JobRecord) -> None:
                job = by_line[record.line]
                try:
                    written = _finish_still(folder, job, record, Path(scratch), workflow.output,
                                            settings.keep_generated_luma)
                except ColorizeError as error:
                    with lock:
                        failures.append(error)
                    return
                with lock:
                    result.generated.append(job.still)
                    result.written += written
                    done = len(result.generated)
                if on_progress is not None:
                    on_progress(done, len(jobs), job)

            options = BatchOptions(servers=list(settings.servers), out_dir=Path(scratch),
                                   concurrency=settings.concurrency, on_record=finished)
            run_batch(workflow.source, rows, guarded, options)
    except ComfyRunError as error:
        raise GenerationError(str(error), int(error.exit_code)) from None
    finally:
        if client_backend is not None:
            client_backend.close()
    result.generated.sort()
    if failures:
        first = failures[0]
        missing = len(jobs) - len(result.generated)
        error = GenerationError(f"{first} ({missing} of {len(jobs)} stills not coloured; the "
                                f"{len(result.generated)} finished are kept: run again to continue)")
        error.exit_code = first.exit_code
        raise error
    return result


def _finish_still(folder: Path, job: StillJob, record: JobRecord, scratch: Path, output_node: str,
                  keep_generated_luma: bool) -> list[Path]:
    """Turn one finished batch job into the keyframes' colour files; raises :class:`GenerationError`."""
    name = reference_file_name(job.still)
    if record.status != "success":
        where = f" on {record.server}" if record.server else ""
        raise GenerationError(f"still {name}{where}: {record.error or record.status}", _exit_code_of(record.status))
    pictures = [o for o in record.outputs if str(o.get("node_id")) == output_node and o.get("kind") == "image"
                and o.get("path")]
    if not pictures:
        raise GenerationError(f"still {name}: the workflow's image output (node {output_node}) "
                              "sent no picture", int(ExitCode.OUTPUT))
    if len(pictures) > 1:
        logger.info("still %s: node %s sent %d pictures; the first is used", name, output_node, len(pictures))
    path = scratch / pictures[0]["path"]
    try:
        generated = _read_image(path)
    except (OSError, ValueError) as error:
        raise GenerationError(f"still {name}: the generated picture {pictures[0].get('filename') or path.name} "
                              f"cannot be read ({error})", int(ExitCode.OUTPUT)) from None
    try:
        gray = _read_image(job.gray)
    except (OSError, ValueError) as error:
        raise ReferenceUnreadableError(f"gray still {job.gray} cannot be read ({error}); run "
                                       "'colorize keyframes' for this folder again") from None
    payload = _png_bytes(colour_reference(generated, gray, keep_generated_luma))
    written = []
    for frame in job.targets:
        target = folder / reference_file_name(frame)
        atomic_write(target, payload)  # readers (and a rerun) never see half a file
        written.append(target)
    path.unlink(missing_ok=True)  # the scratch copy; the batch's own record of it goes with the folder
    return written
