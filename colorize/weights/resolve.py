"""Which checkpoint ``colorize`` loads: search, check, convert once, or download on first use.

Order: ``--weights``, then ``COLORIZE_WEIGHTS``, then ``checkpoints/`` of a source checkout,
then the user cache folder (see :mod:`colorize.weights.locations`). When nothing is found the
official checkpoint is downloaded (unless offline), converted once to ``.safetensors``, and a
notice says where it went and under which licence.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from colorize.weights.catalog import LICENCE_NOTICE, configured_sources, offline_reason
from colorize.weights.checkpoint import convert_checkpoint
from colorize.weights.download import DownloadOptions, download_checkpoint, manual_placement_hint
from colorize.weights.errors import ChecksumMismatchError, WeightsNotFoundError, WeightsPathError
from colorize.weights.locations import candidates, default_download_dir, search_places
from colorize.weights.manifest import Manifest, sha256_file

logger = logging.getLogger(__name__)


def resolve_checkpoint(
    explicit: Path | None = None,
    *,
    allow_download: bool = True,
    progress: bool = True,
) -> Path:
    """The checkpoint file ``colorize`` should load, downloading it if allowed and needed.

    Parameters
    ----------
    explicit:
        The ``--weights`` value: a checkpoint file or a folder holding one. Must exist.
    allow_download:
        When False, a missing checkpoint raises :class:`WeightsNotFoundError` instead.
    progress:
        Show a download progress bar on stderr.
    """
    for place in search_places(explicit):
        found = candidates(place)
        if place.required and not found:
            what = "does not exist" if not place.path.exists() else "holds no .safetensors/.pth/.pt"
            raise WeightsPathError(f"{place.origin} points to {place.path}, which {what}")
        if not found:
            continue
        chosen = found[0]
        check_download_record(chosen)
        if place.required or chosen.suffix == ".safetensors":
            return chosen  # files the user named are used as they are, never rewritten
        return _convert_once(chosen)

    folder = default_download_dir()
    reason = offline_reason()
    if reason is not None or not allow_download:
        why = f"downloads are disabled by {reason}" if reason else "downloading was not allowed"
        hint = manual_placement_hint(configured_sources(), folder)
        raise WeightsNotFoundError(f"no ColorMNet checkpoint found and {why}: {hint}")
    downloaded = download_checkpoint(
        configured_sources(), folder, DownloadOptions(progress=progress)
    )
    result = downloaded if downloaded.suffix == ".safetensors" else _convert_once(downloaded)
    logger.warning("ColorMNet checkpoint saved to %s (%s)", result, LICENCE_NOTICE)
    return result


def check_download_record(path: Path) -> None:
    """Refuse a downloaded file that changed since its sha256 was recorded in the manifest."""
    manifest = Manifest.load(path.parent)
    record = manifest.files.get(path.name)
    if record is None or not record.from_download or record.describes(path):
        return
    digest = sha256_file(path)
    if digest != record.sha256:
        raise ChecksumMismatchError(
            f"{path} changed since it was downloaded (sha256 {digest}, recorded {record.sha256}); "
            "delete it and run `colorize weights download`"
        )
    manifest.record(path, digest, source=record.source)  # same bytes, newer timestamp
    manifest.save()


def _convert_once(pth: Path) -> Path:
    """Convert a found ``.pth`` to ``.safetensors`` beside it; keep the ``.pth`` if not writable."""
    if not os.access(pth.parent, os.W_OK):
        logger.info("%s is read-only; loading %s without converting it", pth.parent, pth.name)
        return pth
    logger.info("converting %s to safetensors (one time)", pth)
    return convert_checkpoint(pth, pth.with_suffix(".safetensors"))
