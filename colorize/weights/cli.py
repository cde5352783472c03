"""``colorize weights ...``: download, convert and list ColorMNet checkpoints.

The group is registered on the main ``colorize`` command by ``colorize/cli.py``. User mistakes
print one line on stderr and exit with the error's own code (see :mod:`colorize.weights.errors`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, TypeVar

import click

from colorize.errors import ColorizeError
from colorize.weights.catalog import LICENCE_NOTICE, configured_sources, offline_reason
from colorize.weights.checkpoint import checkpoint_shapes, convert_checkpoint, summarize_mismatch
from colorize.weights.download import DownloadOptions, download_checkpoint
from colorize.weights.errors import WeightsDownloadError, WeightsPathError
from colorize.weights.locations import SearchPlace, candidates, default_download_dir, search_places
from colorize.weights.manifest import cached_sha256

F = TypeVar("F", bound=Callable[..., object])


def _reports_user_errors(command: F) -> F:
    """Turn a ColorizeError into one line on stderr and its exit code, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except ColorizeError as error:
            click.echo(f"Error: {error}", err=True)
            raise SystemExit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


@click.group("weights")
def weights_group() -> None:
    """Download, convert and list ColorMNet checkpoints (CC BY-NC-SA 4.0, non-commercial)."""


@weights_group.command("download")
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="URL",
    help="http(s) URL or hf://OWNER/REPO/FILE; repeat to give mirrors, tried in order "
    "[default: the official release, then its mirror; or $COLORIZE_WEIGHTS_SOURCES]",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder to download into [default: checkpoints/ in a source checkout, else the user "
    "cache folder]",
)
@click.option(
    "--sha256", "expected_sha256", metavar="HEX", help="refuse a file with another sha256"
)
@click.option("--no-convert", is_flag=True, help="keep the .pth only; do not write .safetensors")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@_reports_user_errors
def download_command(
    sources: tuple[str, ...],
    folder: Path | None,
    expected_sha256: str | None,
    no_convert: bool,
    quiet: bool,
) -> None:
    """Download the checkpoint and convert it to safetensors.

    Mirrors are tried in order; a partial download is resumed; the size and sha256 are checked.
    """
    reason = offline_reason()
    if reason is not None:
        raise WeightsDownloadError(
            f"downloads are disabled by {reason}; unset it to download"
        )
    target_folder = folder or default_download_dir()
    options = DownloadOptions(progress=not quiet, expected_sha256=expected_sha256)
    path = download_checkpoint(list(sources) or list(configured_sources()), target_folder, options)
    if not no_convert and path.suffix != ".safetensors":
        converted = path.with_suffix(".safetensors")
        if not converted.exists():
            convert_checkpoint(path, converted)
        path = converted
    click.echo(str(path))
    click.echo(f"ColorMNet checkpoint ready ({LICENCE_NOTICE})", err=True)


@weights_group.command("convert")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace an existing output file")
@_reports_user_errors
def convert_command(src: Path, dst: Path | None, force: bool) -> None:
    """Convert a .pth checkpoint to .safetensors.

    SRC is read with torch.load(weights_only=True) and checked against the architecture;
    DST defaults to SRC with a .safetensors suffix.
    """
    target = dst if dst is not None else src.with_suffix(".safetensors")
    if target.exists() and not force:
        raise WeightsPathError(f"{target} exists; pass --force to replace it")
    written = convert_checkpoint(src, target)
    click.echo(f"wrote {written}")


@weights_group.command("list")
@_reports_user_errors
def list_command() -> None:
    """List checkpoints found and the one colorize would use."""
    chosen_marked = False
    any_found = False
    for place in search_places():
        found = candidates(place)
        click.echo(f"{_describe_place(place)}:")
        if place.required and not found:
            click.echo(f"  (nothing usable: {place.path} {_missing_reason(place.path)})")
        for path in found:
            any_found = True
            marker = "*" if not chosen_marked else " "
            chosen_marked = True
            # Hashes of files the user pointed at are not cached: their folders are theirs.
            click.echo(f"{marker} {_describe_file(path, remember=not place.required)}")
        if not found and not place.required:
            click.echo("  (none)")
    if any_found:
        click.echo("* = the checkpoint colorize would use")
    else:
        click.echo(
            "no checkpoint found; `colorize weights download` puts one in "
            f"{default_download_dir()}"
        )


def _describe_place(place: SearchPlace) -> str:
    names = {
        "--weights": "--weights",
        "COLORIZE_WEIGHTS": "COLORIZE_WEIGHTS",
        "checkout": "source checkout",
        "cache": "user cache",
    }
    return f"{names.get(place.origin, place.origin)} {place.path}"


def _missing_reason(path: Path) -> str:
    return "does not exist" if not path.exists() else "holds no .safetensors/.pth/.pt"


def _describe_file(path: Path, *, remember: bool) -> str:
    size = f"{path.stat().st_size / 1e6:9.1f} MB"
    try:
        digest = cached_sha256(path, remember=remember)
    except OSError as error:
        digest = f"unreadable ({error.strerror or error})"
    try:
        mismatch = summarize_mismatch(checkpoint_shapes(path))
        verdict = (
            "matches ColorMNet" if mismatch is None else f"DOES NOT match ColorMNet ({mismatch})"
        )
    except ColorizeError as error:
        verdict = f"NOT READABLE ({_first_clause(str(error))})"
    return f"{path}  {size}  sha256 {digest}  {verdict}"


def _first_clause(message: str) -> str:
    return message.split(";", 1)[0]
