"""The ``comfy-run`` command line.

``comfy-run WORKFLOW.json [options]`` runs a workflow file (the group's default command, also
reachable as ``comfy-run file WORKFLOW.json``); the catalog commands (``list``, ``show``, ``run``,
``batch``) come from :mod:`runner.cli_catalog` when it is installed. Human progress goes to stderr,
results (saved file paths, or NDJSON with ``--json``) to stdout. Each finish state has its own exit
code (:class:`runner.errors.ExitCode`), listed in ``--help``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from runner.client import ComfyClient, Deadline, RunResult
from runner.errors import EXIT_CODE_DESCRIPTIONS, CancelledByUserError, ComfyRunError, ExitCode, PromptValidationError
from runner.events import (
    Cached,
    ConnectionNote,
    Event,
    Finished,
    FinishState,
    NodeExecuted,
    NodeStarted,
    Progress,
    Queued,
)
from runner.outputs import Manifest, collect_outputs

log = logging.getLogger(__name__)

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code):>3}  {text}" for code, text in EXIT_CODE_DESCRIPTIONS.items()
)


@dataclass
class RunOptions:
    """Everything one run needs, as given on the command line (or by a catalog command)."""

    server: str | None = None
    token: str | None = None
    sets: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    out: Path | None = None
    timeout: float | None = None
    poll_interval: float = 1.0
    json_output: bool = False
    no_wait: bool = False
    quiet: bool = False


# ---------------------------------------------------------------------------- reporting
class Reporter:
    """Human output: progress on stderr (unless quiet), saved paths on stdout."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last_step: tuple[str, int] | None = None

    def _err(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=True)

    def event(self, event: Event) -> None:
        if isinstance(event, Queued):
            self._err(f"queued prompt {event.prompt_id}")
        elif isinstance(event, Cached) and event.nodes:
            self._err(f"cached: {', '.join(event.nodes)}")
        elif isinstance(event, NodeStarted):
            self._end_progress_line()
            self._err(f"running node {event.node_id} {event.class_type or '?'}{_title(event)}")
        elif isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, ConnectionNote):
            self._end_progress_line()
            self._err(f"websocket {event.state}{f' ({event.detail})' if event.detail else ''}")
        elif isinstance(event, Finished):
            self._end_progress_line()

    def _progress(self, event: Progress) -> None:
        total = int(event.max or 0)
        value = int(event.value or 0)
        if self.quiet or total <= 0:
            return
        if self.tty:
            click.echo(f"\r  step {value}/{total}", err=True, nl=False)
            self._last_step = (event.node_id, value)
            return
        # Not a terminal: a line per quarter, so logs stay short.
        if value == total or value * 4 // total != max(value - 1, 0) * 4 // total:
            click.echo(f"  step {value}/{total}", err=True)

    def _end_progress_line(self) -> None:
        if self._last_step is not None and self.tty:
            click.echo("", err=True)
        self._last_step = None

    def result(self, result: RunResult | None, manifest: Manifest | None, out_dir: Path | None, prompt_id: str,
               queued_only: bool = False) -> None:
        if queued_only:
            click.echo(prompt_id)
            return
        if manifest is not None:
            for record in manifest.outputs:
                click.echo(str(out_dir / record["path"]) if out_dir else record["path"])
            self._err(f"{len(manifest.outputs)} output(s) in {out_dir} (manifest.json)")
        if result is not None and result.ok:
            self._err(f"done: prompt {prompt_id} succeeded")

    def error(self, exc: ComfyRunError, prompt_id: str | None) -> None:
        if isinstance(exc, PromptValidationError) and exc.lines:
            click.echo(f"error: the server rejected the prompt ({len(exc.lines)} problem(s)), nothing was queued:", err=True)
            for line in exc.lines:
                click.echo(f"  {line}", err=True)
            return
        lines = getattr(exc, "lines", None)
        if callable(lines):  # WorkflowError lists every problem
            problems = lines()
            if len(problems) > 1:
                click.echo(f"error: {len(problems)} problems found, nothing was queued:", err=True)
                for line in problems:
                    click.echo(f"  {line}", err=True)
                return
        click.echo(f"error: {exc}", err=True)


class JsonReporter(Reporter):
    """``--json``: one JSON object per event on stdout, then one ``result`` object."""

    def __init__(self) -> None:
        super().__init__(quiet=True)

    @staticmethod
    def _emit(data: dict[str, Any]) -> None:
        click.echo(json.dumps(data, default=str))

    def event(self, event: Event) -> None:
        self._emit(event.to_json())

    def result(self, result: RunResult | None, manifest: Manifest | None, out_dir: Path | None, prompt_id: str,
               queued_only: bool = False) -> None:
        data: dict[str, Any] = {"event": "result", "prompt_id": prompt_id,
                                "state": "queued" if queued_only else (result.state.value if result else None),
                                "exit_code": int(_exit_code_for(result)) if result else 0}
        if result is not None:
            data["message"] = result.message
            data["timings"] = result.timings
            if result.error:
                data["error"] = {k: result.error.get(k) for k in ("node_id", "node_type", "exception_type", "exception_message")}
        if manifest is not None:
            data["out_dir"] = str(out_dir)
            data["outputs"] = manifest.outputs
        self._emit(data)

    def error(self, exc: ComfyRunError, prompt_id: str | None) -> None:
        lines = getattr(exc, "lines", None)
        problems = lines() if callable(lines) else (lines or [])
        self._emit({"event": "result", "prompt_id": prompt_id, "state": _state_for_error(exc),
                    "exit_code": int(exc.exit_code), "message": str(exc), "problems": problems})


def _title(event: NodeStarted | NodeExecuted) -> str:
    return f" {event.title!r}" if event.title and event.title != event.class_type else ""


def _exit_code_for(result: RunResult) -> ExitCode:
    return {
        FinishState.SUCCESS: ExitCode.SUCCESS,
        FinishState.EXECUTION_ERROR: ExitCode.EXECUTION,
        FinishState.OUT_OF_MEMORY: ExitCode.OUT_OF_MEMORY,
        FinishState.INTERRUPTED: ExitCode.INTERRUPTED,
        FinishState.TIMED_OUT: ExitCode.TIMEOUT,
        FinishState.CANCELLED: ExitCode.CANCELLED,
    }.get(result.state, ExitCode.ERROR)


def _state_for_error(exc: ComfyRunError) -> str:
    return {
        ExitCode.VALIDATION: FinishState.VALIDATION_ERROR.value,
        ExitCode.UNREACHABLE: FinishState.UNREACHABLE.value,
        ExitCode.TIMEOUT: FinishState.TIMED_OUT.value,
        ExitCode.CANCELLED: FinishState.CANCELLED.value,
        ExitCode.WORKFLOW: "workflow_error",
        ExitCode.PROTOCOL: "protocol_error",
        ExitCode.OUTPUT: "output_error",
    }.get(ExitCode(exc.exit_code) if exc.exit_code in ExitCode._value2member_map_ else ExitCode.ERROR, "error")


# ---------------------------------------------------------------------------- running
def _prepare(source: str | Path | dict[str, Any], client: ComfyClient, options: RunOptions) -> Any:
    """The workflow ready to post (via :func:`runner.workflow.prepare_workflow`)."""
    from runner.workflow import prepare_workflow  # the workflow side of the seam

    object_info = client.object_info()
    return prepare_workflow(source, object_info, list(options.sets), list(options.inputs),
                            upload=client.upload_image, models=client.models)


def execute(source: str | Path | dict[str, Any], options: RunOptions,
            prepare: Callable[[ComfyClient], Any] | None = None) -> int:
    """Run one workflow end to end and report; returns the process exit code.

    ``prepare`` lets a catalog command supply its own prepared workflow (an object with ``api``,
    ``overrides``, ``titles``, ``class_types``); by default ``source`` goes through
    :func:`runner.workflow.prepare_workflow` with ``options.sets`` / ``options.inputs``.
    """
    reporter: Reporter = JsonReporter() if options.json_output else Reporter(options.quiet)
    prompt_id = str(uuid.uuid4())
    submitted = False
    client = ComfyClient(options.server, options.token, poll_interval=options.poll_interval)
    deadline = Deadline(options.timeout)
    try:
        prepared = prepare(client) if prepare is not None else _prepare(source, client, options)
        submitted = True  # from here on Ctrl-C must cancel our prompt id, even mid-POST
        reply = client.submit(prepared.api, prompt_id=prompt_id, deadline=deadline)
        reporter.event(Queued(prompt_id=prompt_id, number=reply.number, node_errors=reply.node_errors))
        if options.no_wait:
            reporter.result(None, None, None, prompt_id, queued_only=True)
            return ExitCode.SUCCESS
        with _ctrl_c_requests_cancel(client):
            result = client.wait(prompt_id, timeout=deadline.remaining(), on_event=reporter.event,
                                 workflow=prepared.api)
        manifest = None
        out_dir = options.out if options.out is not None else Path("comfy-outputs") / prompt_id
        if result.outputs:  # failed runs keep outputs of nodes that finished first: bring them back too
            manifest = collect_outputs(client, result, out_dir, titles=prepared.titles,
                                       class_types=prepared.class_types, overrides=prepared.overrides)
        reporter.result(result, manifest, out_dir, prompt_id)
        if not result.ok and not options.json_output:
            click.echo(f"error: {result.message}", err=True)
        return int(_exit_code_for(result))
    except KeyboardInterrupt:
        if submitted:
            client.cancel(prompt_id)
        reporter.error(CancelledByUserError("cancelled by the user" + (" (our prompt was cancelled)" if submitted else "")),
                       prompt_id if submitted else None)
        return ExitCode.CANCELLED
    except ComfyRunError as exc:
        reporter.error(exc, prompt_id if submitted else None)
        return int(exc.exit_code)
    finally:
        client.close()


@contextlib.contextmanager
def _ctrl_c_requests_cancel(client: ComfyClient) -> Iterator[None]:
    """While waiting, the first Ctrl-C asks the client to cancel at a safe point of its loop
    (a KeyboardInterrupt raised inside the socket library could be swallowed there); a second
    Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    requested = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True
        client.request_cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------- click
def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by every command that runs a workflow (also used by catalog commands)."""
    decorators = [
        click.option("--server", envvar="COMFYUI_API_URL", show_envvar=True, metavar="URL",
                     help="ComfyUI base URL (a path prefix is kept).  [default: http://127.0.0.1:8188]"),
        click.option("--token", envvar="COMFYUI_API_KEY", show_envvar=True, metavar="TOKEN",
                     help="Sent as 'Authorization: Bearer TOKEN'; never printed or logged."),
        click.option("--set", "sets", multiple=True, metavar="TARGET.INPUT=VALUE",
                     help="Override an input; TARGET is a node id, title or unique class. VALUE is JSON or a string."),
        click.option("--input", "inputs", multiple=True, metavar="TARGET.INPUT=PATH",
                     help="Upload a local file and set its server name on the input."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Output folder.  [default: ./comfy-outputs/<prompt_id>/]"),
        click.option("--timeout", type=click.FloatRange(min=0, min_open=True), envvar="COMFYUI_TIMEOUT",
                     show_envvar=True, default=None, help="Wall-clock deadline in seconds; the prompt is cancelled when it passes."),
        click.option("--poll-interval", type=click.FloatRange(min=0.01), envvar="COMFYUI_POLL_INTERVAL",
                     show_envvar=True, default=1.0, show_default=True, help="Seconds between /history polls."),
        click.option("--json", "json_output", is_flag=True, help="Print NDJSON events and a final result object on stdout."),
        click.option("--no-wait", is_flag=True, help="Queue the prompt, print its id and exit."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


class DefaultCommandGroup(click.Group):
    """A group that runs ``default_command`` when the first argument is not a subcommand."""

    default_command = "file"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultCommandGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="colorize-video", prog_name="comfy-run")
@click.option("--verbose", "-v", is_flag=True, hidden=True, help="Debug logging on stderr.")
def main(verbose: bool = False) -> None:
    """Run ComfyUI workflows: live progress, every output downloaded, one exit code per outcome.

    \b
    comfy-run WORKFLOW.json [--server URL] [--set TARGET.INPUT=VALUE ...] [--input TARGET.INPUT=PATH ...]
                            [--out DIR] [--timeout SECONDS] [--json] [--no-wait] [--quiet]
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command("file", epilog=EXIT_CODES_HELP)
@click.argument("workflow", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@run_options
def run_file(workflow: Path, **options: Any) -> None:
    """Run WORKFLOW (API or UI format JSON) on a ComfyUI server (the default command)."""
    sys.exit(execute(workflow, RunOptions(**options)))


def _add_catalog_commands() -> None:
    try:
        from runner.cli_catalog import catalog_commands
    except ImportError as exc:  # the catalog is optional; the file runner works without it
        log.debug("catalog commands unavailable: %s", exc)
        return
    for command in catalog_commands:
        if command.name not in main.commands:
            main.add_command(command)


_add_catalog_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
