"""Download the checkpoint from a list of sources, verifying it before it is put in place.

Sources are plain ``http(s)://`` URLs (fetched with requests, streamed to ``<name>.part`` with
HTTP Range resume, see :mod:`colorize.weights.transfer`) or ``hf://owner/repo[@rev]/path``
(fetched with huggingface_hub, which handles tokens and its own resume). They are tried in
order; the first that delivers a good file wins.

A file is good when it has the expected sha256 (given, pinned in code, or recorded by an earlier
download) and, always, when it is a readable checkpoint with the architecture's keys and shapes.
The second check is what catches a server that sends a short file with a matching
Content-Length while no sha256 is known. Nothing that could pass for a good checkpoint is left
behind by a failure: bytes land in a ``.part`` file (kept after a cut connection so the next
attempt resumes it, deleted when the file is refused) and are renamed only once verified.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
from pathlib import Path
from typing import Sequence

import requests

from colorize.files import replace_file
from colorize.weights.catalog import OFFICIAL_SOURCES, pinned_sha256
from colorize.weights.checkpoint import verify_checkpoint_file
from colorize.weights.errors import (
    ArchitectureMismatchError,
    CheckpointUnreadableError,
    ChecksumMismatchError,
    WeightsDownloadError,
    WeightsPathError,
    WeightsSourceError,
)
from colorize.weights.manifest import Manifest, sha256_file
from colorize.weights.options import DownloadOptions
from colorize.weights.sources import Source, parse_source
from colorize.weights.transfer import (
    PART_SUFFIX,
    SourceFailed,
    describe_network_error,
    fetch_http,
    first_line,
    size_or_zero,
)

__all__ = [
    "PART_SUFFIX",
    "DownloadOptions",
    "Source",
    "download_checkpoint",
    "manual_placement_hint",
    "parse_source",
]

logger = logging.getLogger(__name__)

# Refusals of a file that did arrive; the last one is raised when no source succeeds.
_Refusal = (ChecksumMismatchError, CheckpointUnreadableError, ArchitectureMismatchError)


def download_checkpoint(
    sources: Sequence[str], folder: Path, options: DownloadOptions = DownloadOptions()
) -> Path:
    """Fetch the checkpoint into ``folder`` from the first source that works; return its path.

    A file already there that matches the expected sha256 (or, with nothing to check it against,
    that is a readable checkpoint of this architecture) is returned without downloading.
    """
    if not sources:
        raise WeightsSourceError("no download source given")
    parsed = [parse_source(text) for text in sources]
    _make_folder(folder)
    manifest = Manifest.load(folder)
    failures: list[SourceFailed] = []
    refusal: Exception | None = None
    for number, source in enumerate(parsed, start=1):
        target = folder / source.filename
        expected = _expected_sha256(target.name, manifest, options)
        if target.is_file() and _already_good(target, expected):
            logger.info("checkpoint already present at %s", target)
            return target
        try:
            part = _fetch(source, target, options)
            digest = _verify(part, source, expected)
            replace_file(part, target)
        except _Refusal as error:
            refusal = error
            _moving_on(error, number, len(parsed))
            continue
        except SourceFailed as error:
            failures.append(error)
            _moving_on(error, number, len(parsed))
            continue
        manifest.record(target, digest, source=source.text)
        manifest.save()
        return target
    if refusal is not None:
        raise refusal
    kept = [p.name for p in folder.glob("*" + PART_SUFFIX)]
    resume_hint = f"; the partial {kept[0]} is kept and the next attempt resumes it" if kept else ""
    raise WeightsDownloadError(
        f"could not download the checkpoint ({_summary(failures)}){resume_hint}; "
        + manual_placement_hint(sources, folder, command=False)
    )


def _moving_on(error: Exception, number: int, count: int) -> None:
    """One line per failed source that is not the last; the final error speaks for the last."""
    if number < count:
        logger.warning("%s; trying source %d of %d", error, number + 1, count)


def _summary(failures: Sequence[SourceFailed]) -> str:
    """``a.org, b.org: connection refused; https://c.org/x.pth: HTTP 404 Not Found``.

    Places that failed the same way share one reason, so two mirrors on one unreachable host,
    or every mirror without a network, read as one short clause.
    """
    by_reason: dict[str, list[str]] = {}
    for failure in failures:
        places = by_reason.setdefault(failure.reason, [])
        if failure.where not in places:
            places.append(failure.where)
    return "; ".join(f"{', '.join(places)}: {reason}" for reason, places in by_reason.items())


def manual_placement_hint(sources: Sequence[str], folder: Path, *, command: bool = True) -> str:
    """What to do by hand: which URL to fetch, where to put it, or ``--weights``.

    ``command`` adds a ready-to-paste curl line.
    """
    source = _first_http_source(sources)
    url = source.browser_url
    if not command:
        return f"download {url} by hand into {folder}{os.sep} or pass --weights PATH"
    target = folder / source.filename
    curl = f"curl -L --create-dirs -o {shlex.quote(str(target))} {shlex.quote(url)}"
    return f"download {url} and place it at {target} (e.g. `{curl}`), or pass --weights PATH"


def _first_http_source(sources: Sequence[str]) -> Source:
    """The first source a browser can open; a hf:// source has such a URL too."""
    parsed: list[Source] = []
    for text in sources:
        try:
            parsed.append(parse_source(text))
        except WeightsSourceError:
            continue
    if not parsed:
        parsed = [parse_source(OFFICIAL_SOURCES[0])]
    return next((s for s in parsed if not s.is_hugging_face), parsed[0])


def _verify(part: Path, source: Source, expected: str | None) -> str:
    """The sha256 of a complete download, once it proved good; a refused file is deleted."""
    digest = sha256_file(part)
    if expected is not None and digest != expected:
        part.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"download from {source.text} has sha256 {digest}, expected {expected}; "
            "the partial file was deleted, retry or use another --source"
        )
    size = size_or_zero(part)
    try:
        # Without a known sha256 this is the only thing between a short or foreign file and the
        # weights folder; with one it costs a second read of a file already in the page cache.
        verify_checkpoint_file(part, label=f"the file from {source.text}")
    except ArchitectureMismatchError as error:
        part.unlink(missing_ok=True)
        raise ArchitectureMismatchError(f"{error}; the download was deleted") from None
    except CheckpointUnreadableError as error:
        part.unlink(missing_ok=True)
        what = _first_clause(str(error)).replace(str(part), "it")
        raise CheckpointUnreadableError(
            f"the file from {source.text} ({size} bytes) is not a usable checkpoint: {what}; "
            "the download was deleted, retry or use another --source"
        ) from None
    return digest


def _first_clause(message: str) -> str:
    return message.split(";", 1)[0]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WeightsPathError(
            f"cannot create the weights folder {folder}: {error.strerror or error}; "
            "choose another with --dir or COLORIZE_CACHE_DIR"
        ) from error
    if not os.access(folder, os.W_OK):
        raise WeightsPathError(
            f"the weights folder {folder} is not writable; choose another with --dir or "
            "COLORIZE_CACHE_DIR"
        )


def _expected_sha256(name: str, manifest: Manifest, options: DownloadOptions) -> str | None:
    """Explicit value, else the pinned one, else the sha256 recorded by an earlier download."""
    if options.expected_sha256:
        return options.expected_sha256.strip().lower()
    pinned = pinned_sha256(name)
    if pinned:
        return pinned
    record = manifest.files.get(name)
    return record.sha256 if record is not None and record.from_download else None


def _already_good(target: Path, expected: str | None) -> bool:
    if expected is None:
        try:
            verify_checkpoint_file(target)
        except (CheckpointUnreadableError, ArchitectureMismatchError) as error:
            logger.warning("%s; downloading it again", _first_clause(str(error)))
            return False
        return True
    if sha256_file(target) == expected:
        return True
    logger.warning("%s does not match sha256 %s; downloading it again", target, expected)
    return False


def _fetch(source: Source, target: Path, options: DownloadOptions) -> Path:
    """Bring the complete file to ``<target>.part`` and return that path."""
    part = target.with_name(target.name + PART_SUFFIX)
    if source.is_hugging_face:
        return _fetch_hugging_face(source, part)
    return fetch_http(source.url, source.host, part, options)


def _fetch_hugging_face(source: Source, part: Path) -> Path:
    _require_resolvable(source)
    # Imported here: huggingface_hub is only needed for hf:// sources and is slow to import.
    from huggingface_hub import hf_hub_download

    staging = part.parent / ".hf-staging"
    try:
        local = hf_hub_download(
            repo_id=source.repo_id,
            filename=source.path_in_repo,
            revision=source.revision,
            local_dir=staging,
        )
        os.replace(local, part)
    except Exception as error:  # noqa: BLE001 - any hub failure means "try the next source"
        text, _ = describe_network_error(error)
        if text.startswith("connection failed"):
            # Not a network fault: the hub's own words ("Repository Not Found ...").
            raise SourceFailed(source.text, first_line(error)) from None
        raise SourceFailed(source.host, text) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return part


def _require_resolvable(source: Source) -> None:
    """Fail at once when the hub's host name does not resolve.

    huggingface_hub retries such a failure five times with growing waits (about 20 s) and logs
    each try; a name that does not resolve now will not resolve in a few seconds either. Skipped
    when a proxy is configured: then the proxy, not this machine, looks the name up.
    """
    proxies = requests.utils.get_environ_proxies(source.browser_url)  # {} when NO_PROXY matches
    if proxies.get("https") or proxies.get("all"):
        return
    try:
        socket.getaddrinfo(source.host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        text, _ = describe_network_error(error)
        raise SourceFailed(source.host, text) from None
    except OSError:
        return  # anything else is left to the hub's own handling
