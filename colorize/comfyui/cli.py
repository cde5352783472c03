"""``colorize comfyui install|uninstall COMFYUI_DIR`` (registered lazily by colorize.cli)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from colorize.errors import ColorizeError

EXIT_CODES = """\b
Exit codes:
  0   done
  40  ComfyUI folder missing, not ComfyUI, or not writable; or not installed (uninstall)
  41  ComfyUI is older than the nodes need
  42  ComfyUI's Python cannot import colorize (the message gives the fix)
  43  a custom_nodes file of the same name was not written by colorize
"""


@click.group("comfyui", context_settings={"help_option_names": ["-h", "--help"]})
def comfyui_group() -> None:
    """Run ColorMNet inside ComfyUI: install or remove the colorize nodes."""


@comfyui_group.command("install", epilog=EXIT_CODES)
@click.argument("comfyui_dir", metavar="COMFYUI_DIR", type=click.Path(path_type=Path))
@click.option("--python", "python", metavar="PATH", default=sys.executable, show_default=True,
              help="The Python ComfyUI runs with; it must be able to import colorize.")
@click.pass_context
def install_command(ctx: click.Context, comfyui_dir: Path, python: str) -> None:
    """Put a small loader for the colorize nodes into COMFYUI_DIR/custom_nodes.

    The loader imports the installed colorize package (no copy of the code), so upgrading the
    package upgrades the nodes. Restart ComfyUI afterwards. Checkpoints go into
    COMFYUI_DIR/models/colormnet.
    """
    from colorize.comfyui.installer import install

    try:
        result = install(comfyui_dir, python)
    except ColorizeError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(error.exit_code)
    click.echo(f"installed {result.loader} (ComfyUI {result.comfyui_version or 'unknown version'}, "
               f"colorize {result.package_version} in {result.python})")
    click.echo(f"checkpoints go into {result.model_folder}; restart ComfyUI to load the nodes")


@comfyui_group.command("uninstall", epilog=EXIT_CODES)
@click.argument("comfyui_dir", metavar="COMFYUI_DIR", type=click.Path(path_type=Path))
@click.pass_context
def uninstall_command(ctx: click.Context, comfyui_dir: Path) -> None:
    """Remove the colorize loader from COMFYUI_DIR/custom_nodes (checkpoints stay)."""
    from colorize.comfyui.installer import uninstall

    try:
        loader = uninstall(comfyui_dir)
    except ColorizeError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(error.exit_code)
    click.echo(f"removed {loader}; restart ComfyUI to unload the nodes")
