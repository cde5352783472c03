"""What every workflow-running command shares: its options (click and dataclass) and the exit-code help."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from runner.errors import EXIT_CODE_DESCRIPTIONS

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
    save_previews: bool = False



def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by every command that runs a workflow (also used by catalog commands)."""
    decorators = [
        click.option("--server", envvar="COMFYUI_API_URL", show_envvar=True, metavar="URL",
                     help="ComfyUI base URL (a path prefix is kept).  [default: http://127.0.0.1:8188]"),
        click.option("--token", envvar="COMFYUI_API_KEY", show_envvar=True, metavar="TOKEN",
                     help="Sent as 'Authorization: Bearer TOKEN'; never printed or logged."),
        click.option("--set", "sets", multiple=True, metavar="TARGET.INPUT=VALUE",
                     help="Override an input; TARGET is a node id, title or unique class, or '*' for every node that has "
                          "INPUT ('*.seed=42'). VALUE is JSON or a string."),
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
        click.option("--save-previews", is_flag=True,
                     help="Also save sampler preview images (not outputs) to OUT/previews/ as they arrive."),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command
