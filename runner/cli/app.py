"""The ``comfy-run`` click group: the default ``file`` command, plus the catalog commands."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from runner.cli.options import EXIT_CODES_HELP, RunOptions, run_options
from runner.cli.run import execute

log = logging.getLogger(__name__)


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
        from runner.cli.catalog import catalog_commands
    except ImportError as exc:  # the catalog is optional; the file runner works without it
        log.debug("catalog commands unavailable: %s", exc)
        return
    for command in catalog_commands:
        if command.name not in main.commands:
            main.add_command(command)


_add_catalog_commands()
