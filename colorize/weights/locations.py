"""Where checkpoints are looked for, in order, and which file in a folder is preferred.

Search order: ``--weights PATH``, then ``COLORIZE_WEIGHTS``, then ``checkpoints/`` of a source
checkout, then the user cache folder. Within a folder the official checkpoint comes before any
other, and a ``.safetensors`` file before a ``.pth``/``.pt`` of the same name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from colorize.weights.catalog import CHECKPOINT_STEM, ENV_CACHE_DIR, ENV_WEIGHTS

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt")
_SUFFIX_RANK = {suffix: rank for rank, suffix in enumerate(CHECKPOINT_SUFFIXES)}
_APP_NAME = "colorize"


def user_cache_dir() -> Path:
    """The per-user weights folder: ``COLORIZE_CACHE_DIR`` or the platform's cache location."""
    override = os.environ.get(ENV_CACHE_DIR, "").strip()
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", "").strip()
        return (Path(base) if base else Path.home() / "AppData" / "Local") / _APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / _APP_NAME
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / _APP_NAME


def checkout_checkpoints_dir() -> Path | None:
    """``checkpoints/`` of the source checkout this package runs from, or None when installed.

    A checkout is recognised by ``pyproject.toml`` and ``checkpoints/`` next to the package.
    """
    root = Path(__file__).resolve().parents[2]  # colorize/weights/locations.py -> root
    folder = root / "checkpoints"
    if (root / "pyproject.toml").is_file() and folder.is_dir():
        return folder
    return None


def default_download_dir() -> Path:
    """Where a download goes when no folder is given: the checkout's folder, else the cache."""
    return checkout_checkpoints_dir() or user_cache_dir()


@dataclass(frozen=True)
class SearchPlace:
    """One step of the search: a file or a folder, and why it is searched."""

    path: Path
    origin: str  # "--weights", "COLORIZE_WEIGHTS", "checkout", "cache"
    required: bool  # explicit places must exist; silently skipping them would hide a typo


def search_places(explicit: Path | None = None) -> list[SearchPlace]:
    """The places searched, in order, for the given ``--weights`` value."""
    places: list[SearchPlace] = []
    if explicit is not None:
        places.append(SearchPlace(Path(explicit).expanduser(), "--weights", True))
    from_env = os.environ.get(ENV_WEIGHTS, "").strip()
    if from_env:
        places.append(SearchPlace(Path(from_env).expanduser(), ENV_WEIGHTS, True))
    checkout = checkout_checkpoints_dir()
    if checkout is not None:
        places.append(SearchPlace(checkout, "checkout", False))
    places.append(SearchPlace(user_cache_dir(), "cache", False))
    return places


def checkpoints_in(folder: Path) -> list[Path]:
    """Checkpoint files directly in ``folder``, best first (see module docstring)."""
    try:
        files = [
            entry
            for entry in folder.iterdir()
            if entry.suffix in _SUFFIX_RANK and entry.is_file() and not entry.name.startswith(".")
        ]
    except OSError:
        return []
    return sorted(
        files, key=lambda p: (p.stem != CHECKPOINT_STEM, p.stem, _SUFFIX_RANK[p.suffix])
    )


def candidates(place: SearchPlace) -> list[Path]:
    """The checkpoint files a place offers: the file itself, or the files in the folder."""
    if place.path.is_file():
        return [place.path]
    if place.path.is_dir():
        return checkpoints_in(place.path)
    return []
