"""How a run is shown: human progress on stderr and paths on stdout, or NDJSON with ``--json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from runner.client import RunResult
from runner.errors import ComfyRunError, ExitCode, PromptValidationError
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
from runner.client.outputs import Manifest


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
            if manifest.previews:
                self._err(f"{len(manifest.previews)} preview(s) in {out_dir / 'previews'}")
        if result is not None and result.ok:
            self._err(f"done: prompt {prompt_id} succeeded")

    def warn(self, line: str) -> None:
        click.echo(f"warning: {line}", err=True)

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
        self.warnings: list[str] = []

    def warn(self, line: str) -> None:
        self.warnings.append(line)  # reported in the result object

    @staticmethod
    def _emit(data: dict[str, Any]) -> None:
        click.echo(json.dumps(data, default=str))

    def event(self, event: Event) -> None:
        self._emit(event.to_json())

    def result(self, result: RunResult | None, manifest: Manifest | None, out_dir: Path | None, prompt_id: str,
               queued_only: bool = False) -> None:
        data: dict[str, Any] = {"event": "result", "prompt_id": prompt_id,
                                "state": "queued" if queued_only else (result.state.value if result else None),
                                "exit_code": int(exit_code_for(result)) if result else 0}
        if result is not None:
            data["message"] = result.message
            data["timings"] = result.timings
            if result.error:
                data["error"] = {k: result.error.get(k) for k in ("node_id", "node_type", "exception_type", "exception_message")}
        if manifest is not None:
            data["out_dir"] = str(out_dir)
            data["outputs"] = manifest.outputs
            if manifest.previews:
                data["previews"] = manifest.previews
        if self.warnings:
            data["warnings"] = self.warnings
        self._emit(data)

    def error(self, exc: ComfyRunError, prompt_id: str | None) -> None:
        lines = getattr(exc, "lines", None)
        problems = lines() if callable(lines) else (lines or [])
        self._emit({"event": "result", "prompt_id": prompt_id, "state": _state_for_error(exc),
                    "exit_code": int(exc.exit_code), "message": str(exc), "problems": problems})


def _title(event: NodeStarted | NodeExecuted) -> str:
    return f" {event.title!r}" if event.title and event.title != event.class_type else ""


def exit_code_for(result: RunResult) -> ExitCode:
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
