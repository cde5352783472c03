"""Running one workflow end to end for a command: prepare, submit, wait (Ctrl-C cancels), collect, report."""

from __future__ import annotations

import contextlib
import signal
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from runner.cli.options import RunOptions
from runner.cli.report import JsonReporter, Reporter, exit_code_for
from runner.client import ComfyClient, Deadline
from runner.client.protocol import CancelRequested
from runner.errors import CancelledByUserError, ComfyRunError, ExitCode
from runner.events import Event, Queued
from runner.client.outputs import collect_outputs, missing_websocket_images
from runner.previews import PreviewSaver


def _prepare(source: str | Path | dict[str, Any], client: ComfyClient, options: RunOptions) -> Any:
    """The workflow ready to post (via :func:`runner.workflow.prepare_workflow`)."""
    from runner.workflow import prepare_workflow  # the workflow side of the seam

    object_info = client.object_info()
    return prepare_workflow(source, object_info, list(options.sets), list(options.inputs),
                            upload=client.upload_image, models=client.models, server=client.server)


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
    # Ctrl-C is a request to the client from the start to the end: a KeyboardInterrupt raised
    # wherever the signal lands can be lost (in a finalizer), or come mid-POST, before the server
    # has queued what we then fail to cancel.
    with _ctrl_c_requests_cancel(client):
        try:
            prepared = prepare(client) if prepare is not None else _prepare(source, client, options)
            submitted = True  # from here on Ctrl-C must cancel our prompt id, even mid-POST
            reply = client.submit(prepared.api, prompt_id=prompt_id, deadline=deadline)
            reporter.event(Queued(prompt_id=prompt_id, number=reply.number, node_errors=reply.node_errors))
            if options.no_wait:
                reporter.result(None, None, None, prompt_id, queued_only=True)
                return ExitCode.SUCCESS
            out_dir = options.out if options.out is not None else Path("comfy-outputs") / prompt_id
            on_event: Callable[[Event], None] = reporter.event
            previews = PreviewSaver(out_dir) if options.save_previews else None
            if previews is not None:
                on_event = _both(previews, reporter.event)
            result = client.wait(prompt_id, timeout=deadline.remaining(), on_event=on_event, workflow=prepared.api)
            if client.cancel_requested:  # Ctrl-C after the wait's last look: the run is over, nothing to keep
                raise CancelRequested
            manifest = None
            # Failed runs keep outputs of nodes that finished first: bring them back too.
            if result.has_outputs or (previews is not None and previews.records):
                manifest = collect_outputs(client, result, out_dir, titles=prepared.titles,
                                           class_types=prepared.class_types, overrides=prepared.overrides,
                                           previews=previews.records if previews is not None else None)
            for line in missing_websocket_images(prepared.api, result):
                reporter.warn(line)
            reporter.result(result, manifest, out_dir, prompt_id)
            if not result.ok and not options.json_output:
                click.echo(f"error: {result.message}", err=True)
            return int(exit_code_for(result))
        except (KeyboardInterrupt, CancelRequested):
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


def _both(first: Callable[[Event], None], second: Callable[[Event], None]) -> Callable[[Event], None]:
    def on_event(event: Event) -> None:
        first(event)
        second(event)
    return on_event


@contextlib.contextmanager
def _ctrl_c_requests_cancel(client: ComfyClient) -> Iterator[None]:
    """The first Ctrl-C asks the client to cancel at a safe point of its loops (before the POST,
    between retries, at each turn of the wait); a second Ctrl-C interrupts at once."""
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
