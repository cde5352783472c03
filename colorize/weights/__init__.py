"""The ColorMNet checkpoint: find it, fetch it, read it, check it against the architecture.

What the rest of ``colorize`` calls, re-exported here (loaded on first use) from the
modules that do the work:

* :func:`resolve_checkpoint` - the file ``colorize`` should load: ``--weights``, then
  ``COLORIZE_WEIGHTS``, then ``checkpoints/`` of a source checkout, then the user cache folder;
  when nothing is found it downloads the official checkpoint (unless offline), converts it once
  to ``.safetensors`` and says where it went and under which licence.
* :func:`load_checkpoint` - a flat ``{name: tensor}`` from ``.safetensors`` or ``.pth``/``.pt``
  (``torch.load(weights_only=True)`` only; no pickled code is ever run).
* :func:`check_state_dict` / :func:`verify_state_dict` - compare keys and shapes with the
  packaged spec of the official checkpoint (``colorize/model/checkpoint_spec.json``).
* :func:`convert_checkpoint` - ``.pth`` to ``.safetensors``, checked, written atomically.

Modules, each importing only those above it (no cycles):

=============  =================================================================================
errors         exceptions with exit codes 20-29
catalog        facts about the official file: name, mirrors, pinned sha256, environment variables
locations      where checkpoints are searched, and which file in a folder is preferred
manifest       sha256 records kept beside downloaded files
checkpoint     read, check against the architecture, convert to safetensors
options        how a download behaves (progress, retries, timeouts)
progress       the byte counter shown while downloading
sources        ``https://`` and ``hf://`` sources
transfer       one HTTP file to a ``.part`` file, with resume and retries for transient failures
download       sources in order, verification before the rename, the final message
resolve        the search, the one-time conversion, the first-run download
cli            ``colorize weights download|convert|list`` (imported only by ``colorize/cli.py``)
=============  =================================================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it. Loaded on first use (PEP 562), so that importing the
# package, as ``colorize --help`` does to see whether ``colorize weights`` exists, stays free of
# torch; ``from colorize.weights import X`` works as with ordinary imports.
_EXPORTS = {
    "ArchitectureMismatchError": "errors",
    "CheckpointUnreadableError": "errors",
    "ChecksumMismatchError": "errors",
    "WeightsDownloadError": "errors",
    "WeightsNotFoundError": "errors",
    "WeightsPathError": "errors",
    "WeightsSourceError": "errors",
    "CHECKPOINT_FILENAME": "catalog",
    "LICENCE_NOTICE": "catalog",
    "OFFICIAL_SOURCES": "catalog",
    "configured_sources": "catalog",
    "offline_reason": "catalog",
    "candidates": "locations",
    "default_download_dir": "locations",
    "search_places": "locations",
    "Manifest": "manifest",
    "sha256_file": "manifest",
    "MAX_LISTED_PROBLEMS": "checkpoint",
    "CheckpointSpec": "checkpoint",
    "check_shapes": "checkpoint",
    "check_state_dict": "checkpoint",
    "checkpoint_shapes": "checkpoint",
    "convert_checkpoint": "checkpoint",
    "default_spec": "checkpoint",
    "load_checkpoint": "checkpoint",
    "summarize_mismatch": "checkpoint",
    "verify_checkpoint_file": "checkpoint",
    "verify_state_dict": "checkpoint",
    "DownloadOptions": "options",
    "download_checkpoint": "download",
    "check_download_record": "resolve",
    "resolve_checkpoint": "resolve",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - what type checkers and editors should see
    from colorize.weights.catalog import (
        CHECKPOINT_FILENAME,
        LICENCE_NOTICE,
        OFFICIAL_SOURCES,
        configured_sources,
        offline_reason,
    )
    from colorize.weights.checkpoint import (
        MAX_LISTED_PROBLEMS,
        CheckpointSpec,
        check_shapes,
        check_state_dict,
        checkpoint_shapes,
        convert_checkpoint,
        default_spec,
        load_checkpoint,
        summarize_mismatch,
        verify_checkpoint_file,
        verify_state_dict,
    )
    from colorize.weights.download import download_checkpoint
    from colorize.weights.errors import (
        ArchitectureMismatchError,
        CheckpointUnreadableError,
        ChecksumMismatchError,
        WeightsDownloadError,
        WeightsNotFoundError,
        WeightsPathError,
        WeightsSourceError,
    )
    from colorize.weights.locations import candidates, default_download_dir, search_places
    from colorize.weights.manifest import Manifest, sha256_file
    from colorize.weights.options import DownloadOptions
    from colorize.weights.resolve import check_download_record, resolve_checkpoint

__all__ = [
    "ArchitectureMismatchError",
    "CHECKPOINT_FILENAME",
    "CheckpointSpec",
    "CheckpointUnreadableError",
    "ChecksumMismatchError",
    "DownloadOptions",
    "LICENCE_NOTICE",
    "MAX_LISTED_PROBLEMS",
    "Manifest",
    "OFFICIAL_SOURCES",
    "WeightsDownloadError",
    "WeightsNotFoundError",
    "WeightsPathError",
    "WeightsSourceError",
    "candidates",
    "check_download_record",
    "check_shapes",
    "check_state_dict",
    "checkpoint_shapes",
    "configured_sources",
    "convert_checkpoint",
    "default_download_dir",
    "default_spec",
    "download_checkpoint",
    "load_checkpoint",
    "offline_reason",
    "resolve_checkpoint",
    "search_places",
    "sha256_file",
    "summarize_mismatch",
    "verify_checkpoint_file",
    "verify_state_dict",
]
