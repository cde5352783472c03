"""Catalog commands of ``comfy-run``: ``list``, ``show ID``, ``run ID --param name=value`` and ``batch``.

They sit on the registry (:mod:`runner.registry`) and reuse the main command's run machinery
(:func:`runner.cli.run.execute`) and options (:mod:`runner.cli.options`), so flags, output and exit
codes are the same everywhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from runner.batch import BatchOptions, ClientBackend, run_batch, summary_table
from runner.cli.options import EXIT_CODES_HELP, RunOptions, run_options
from runner.cli.run import execute
from runner.errors import ComfyRunError, ExitCode
from runner.registry import Registry, load_registry
from runner.workflow import prepare_workflow

def _registry() -> Registry:
    try:
        return load_registry()
    except ComfyRunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))


@click.command("list")
@click.option("--json", "json_output", is_flag=True, help="Print the entries as JSON.")
def list_command(json_output: bool) -> None:
    """List the ready-made workflows of the registry."""
    registry = _registry()
    if json_output:
        click.echo(json.dumps([{"id": e.id, "title": e.title, "category": e.category, "description": e.description,
                                "parameters": sorted(e.parameters)} for e in registry.entries.values()], indent=2))
        return
    width = max(len(entry_id) for entry_id in registry.entries)
    for entry in registry.entries.values():
        click.echo(f"{entry.id:{width}}  {entry.title}: {entry.description}")


@click.command("show")
@click.argument("workflow_id")
@click.option("--json", "json_output", is_flag=True, help="Print the entry and its template as JSON.")
@click.option("--json-schema", "json_schema", is_flag=True,
              help="Print the parameters as a JSON Schema (draft 2020-12), for building a form.")
def show_command(workflow_id: str, json_output: bool, json_schema: bool) -> None:
    """Show a registry workflow's parameters (type, limits, default, targets)."""
    registry = _registry()
    try:
        entry = registry.get(workflow_id)
        template = entry.template()
    except ComfyRunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    if json_schema:
        click.echo(json.dumps(entry.json_schema(), indent=2))
        return
    if json_output:
        click.echo(json.dumps({
            "id": entry.id, "title": entry.title, "category": entry.category, "description": entry.description,
            "parameters": {name: {"type": p.type, "min": p.min, "max": p.max, "choices": p.choices, "default": p.default,
                                  "description": p.description,
                                  "targets": [{"node": t.node, "input": t.input} for t in p.targets]}
                           for name, p in entry.parameters.items()},
            "workflow": template,
        }, indent=2))
        return
    click.echo(f"{entry.id}: {entry.title}")
    click.echo(f"  {entry.description}")
    click.echo("parameters (--param NAME=VALUE):")
    for name, parameter in entry.parameters.items():
        targets = ", ".join(
            f"{t.node}.{t.input} ({template.get(t.node, {}).get('class_type', '?')})" for t in parameter.targets
        )
        click.echo(f"  {name:16} {parameter.describe()}  [default: {parameter.default!r}]")
        click.echo(f"  {'':16} {parameter.description}  -> {targets}")


@click.command("run", epilog=EXIT_CODES_HELP)
@click.argument("workflow_id")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Set a registry parameter ('comfy-run show ID' lists them).")
@run_options
def run_command(workflow_id: str, params: tuple[str, ...], **options: Any) -> None:
    """Run a registry workflow; every parameter is checked against the server before anything is queued."""
    registry = _registry()
    run_options = RunOptions(**options)

    def prepare(client: Any) -> Any:
        entry = registry.get(workflow_id)
        sets, inputs, _ = entry.overrides(list(params))  # parameter problems first, before any request
        return prepare_workflow(entry.template(), client.object_info(), sets + list(run_options.sets),
                                inputs + list(run_options.inputs), upload=client.upload_image, models=client.models,
                                server=client.server)

    sys.exit(execute(workflow_id, run_options, prepare=prepare))


@click.command("batch", epilog=EXIT_CODES_HELP)
@click.argument("workflow")
@click.option("--params", "params_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL file: one JSON object of overrides per line ('TARGET.INPUT': value, or registry parameters).")
@click.option("--server", "servers", multiple=True, metavar="URL",
              help="A ComfyUI server; repeat for several (jobs go to the least busy).  [default: $COMFYUI_API_URL]")
@click.option("--token", envvar="COMFYUI_API_KEY", show_envvar=True, metavar="TOKEN",
              help="Sent as 'Authorization: Bearer TOKEN'; never printed or logged.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("comfy-batch"), show_default=True,
              help="Output folder: one subfolder per job plus batch_manifest.json.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), envvar="COMFYUI_TIMEOUT", default=None,
              help="Wall-clock deadline per job in seconds.")
@click.option("--poll-interval", type=click.FloatRange(min=0.01), envvar="COMFYUI_POLL_INTERVAL", default=1.0,
              show_default=True, help="Seconds between /history polls.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="Jobs in flight at once.  [default: 2 per server]")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object per finished job and a final summary.")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary table.")
def batch_command(workflow: str, params_file: Path, servers: tuple[str, ...], token: str | None, out: Path,
                  timeout: float | None, poll_interval: float, concurrency: int | None, json_output: bool,
                  quiet: bool) -> None:
    """Run WORKFLOW (a file or a registry id) once per line of --params, across one or more servers.

    Rerunning with the same --out skips jobs whose outputs are already in batch_manifest.json.
    """
    import os

    server_list = list(servers) or [os.environ.get("COMFYUI_API_URL") or "http://127.0.0.1:8188"]

    def on_record(record: Any) -> None:
        if json_output:
            click.echo(json.dumps({"event": "job", **record.to_json()}))
        elif not quiet:
            click.echo(f"line {record.line}: {record.status} ({record.job_id}) {record.server or ''}", err=True)

    backend = ClientBackend(token=token, timeout=timeout, poll_interval=poll_interval)
    try:
        result = run_batch(workflow, params_file, backend,
                           BatchOptions(server_list, out, concurrency=concurrency, on_record=on_record))
    except ComfyRunError as exc:
        if json_output:
            click.echo(json.dumps({"event": "error", "exit_code": int(exc.exit_code), "message": str(exc),
                                   "problems": getattr(exc, "problems", [str(exc)])}))
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    finally:
        backend.close()
    if json_output:
        click.echo(json.dumps({"event": "summary", "manifest": str(result.manifest_path), "seconds": result.seconds,
                               "jobs": len(result.records), "failed": len(result.failed)}))
    else:
        click.echo(summary_table(result))
    sys.exit(int(ExitCode.ERROR) if result.failed else int(ExitCode.SUCCESS))


# Added to the ``comfy-run`` group by runner.cli.app (this module does not know the group).
catalog_commands = [list_command, show_command, run_command, batch_command]
