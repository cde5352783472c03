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
  43  custom_nodes/colorize exists and was not written by colorize
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
    """Install the colorize node pack as COMFYUI_DIR/custom_nodes/colorize/.

    The folder holds a small loader that imports the installed colorize package (no copy of the
    code), so upgrading the package upgrades the nodes, and example_workflows/ (colorize-video,
    colorize-frames, colorize-video-keyframes, colorize-film), which ComfyUI's template browser
    lists under 'colorize'. An earlier single-file install is replaced. Restart ComfyUI
    afterwards. Checkpoints go into COMFYUI_DIR/models/colormnet.
    """
    from colorize.comfyui.installer import install

    try:
        result = install(comfyui_dir, python)
    except ColorizeError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(error.exit_code)
    click.echo(f"installed {result.loader.parent} (ComfyUI {result.comfyui_version or 'unknown version'}, "
               f"colorize {result.package_version} in {result.python})")
    if result.replaced_old_loader:
        click.echo("removed the single-file loader of an earlier install (custom_nodes/colorize_video_nodes.py)")
    click.echo(f"{len(result.examples)} example workflows in the template browser under 'colorize': "
               + ", ".join(path.stem for path in result.examples))
    click.echo(f"checkpoints go into {result.model_folder}; restart ComfyUI to load the nodes")


@comfyui_group.command("uninstall", epilog=EXIT_CODES)
@click.argument("comfyui_dir", metavar="COMFYUI_DIR", type=click.Path(path_type=Path))
@click.pass_context
def uninstall_command(ctx: click.Context, comfyui_dir: Path) -> None:
    """Remove the colorize pack folder from COMFYUI_DIR/custom_nodes (checkpoints stay)."""
    from colorize.comfyui.installer import uninstall

    try:
        removed = uninstall(comfyui_dir)
    except ColorizeError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(error.exit_code)
    click.echo(f"removed {', '.join(map(str, removed))}; restart ComfyUI to unload the nodes")
