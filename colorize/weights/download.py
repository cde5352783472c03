"""Download the checkpoint from a list of sources, resuming and verifying as it goes.

Sources are plain ``http(s)://`` URLs (fetched with requests, streamed to ``<name>.part`` with
HTTP Range resume) or ``hf://owner/repo[@revision]/path/in/repo`` (fetched with huggingface_hub,
which handles tokens and its own resume). They are tried in order; the first that delivers a
file of the announced size with the expected sha256 wins.

Nothing that could pass for a good checkpoint is left behind by a failure: bytes land in a
``.part`` file (kept after a network failure so the next attempt resumes it, deleted after a
checksum mismatch) and are renamed to the final name only once verified.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO
from urllib.parse import unquote, urlparse

import requests

from colorize.weights_catalog import CHECKPOINT_FILENAME, pinned_sha256
from colorize.weights_errors import (
    ChecksumMismatchError,
    WeightsDownloadError,
    WeightsPathError,
    WeightsSourceError,
)
from colorize.weights_locations import CHECKPOINT_SUFFIXES
from colorize.weights_manifest import Manifest, sha256_file

logger = logging.getLogger(__name__)

PART_SUFFIX = ".part"


@dataclass(frozen=True)
class Source:
    """One place the checkpoint can be fetched from."""

    text: str  # as the user wrote it; used in messages and the manifest
    url: str = ""  # for http(s) sources
    repo_id: str = ""  # for hf:// sources
    path_in_repo: str = ""
    revision: str | None = None

    @property
    def is_hugging_face(self) -> bool:
        return bool(self.repo_id)

    @property
    def filename(self) -> str:
        """Name the downloaded file gets: the source's own name when it looks like a checkpoint."""
        raw = self.path_in_repo if self.is_hugging_face else unquote(urlparse(self.url).path)
        name = raw.rstrip("/").rsplit("/", 1)[-1]
        return name if name.endswith(CHECKPOINT_SUFFIXES) else CHECKPOINT_FILENAME


def parse_source(text: str) -> Source:
    """Turn ``https://...`` or ``hf://owner/repo[@rev]/file`` into a :class:`Source`."""
    text = text.strip()
    if text.startswith("hf://"):
        parts = text[len("hf://"):].split("/")
        if len(parts) < 3 or not all(parts):
            raise WeightsSourceError(
                f"malformed source {text!r}: write hf://OWNER/REPO/PATH/IN/REPO "
                "(optionally hf://OWNER/REPO@REVISION/PATH)"
            )
        repo_name, _, revision = parts[1].partition("@")
        return Source(
            text=text,
            repo_id=f"{parts[0]}/{repo_name}",
            path_in_repo="/".join(parts[2:]),
            revision=revision or None,
        )
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return Source(text=text, url=text)
    raise WeightsSourceError(
        f"unsupported source {text!r}: give an http(s):// URL or hf://OWNER/REPO/FILE"
    )


@dataclass(frozen=True)
class DownloadOptions:
    """How downloads behave; the defaults suit an interactive first run."""

    progress: bool = True
    progress_stream: TextIO | None = None  # None: sys.stderr at the time of the download
    expected_sha256: str | None = None  # beats the pinned value and the manifest record
    resume_attempts: int = 3  # reconnects per source after a dropped connection
    retry_delay_s: float = 1.0  # grows linearly with each reconnect
    connect_timeout_s: float = 15.0
    read_timeout_s: float = 60.0
    chunk_size: int = 1024 * 1024


class _SourceFailed(Exception):
    """This source cannot deliver the file; try the next one."""


class _ConnectionCut(Exception):
    """The transfer stopped early; the .part file holds what arrived and can be resumed."""


def download_checkpoint(
    sources: Sequence[str], folder: Path, options: DownloadOptions = DownloadOptions()
) -> Path:
    """Fetch the checkpoint into ``folder`` from the first source that works; return its path.

    A file already there that matches the expected sha256 (or that has nothing to be checked
    against) is returned without downloading.
    """
    if not sources:
        raise WeightsSourceError("no download source given")
    parsed = [parse_source(text) for text in sources]
    _make_folder(folder)
    manifest = Manifest.load(folder)
    failures: list[str] = []
    mismatch: ChecksumMismatchError | None = None
    for source in parsed:
        target = folder / source.filename
        expected = _expected_sha256(target.name, manifest, options)
        if target.is_file() and _already_good(target, expected):
            logger.info("checkpoint already present at %s", target)
            return target
        try:
            part = _fetch(source, target, options)
            digest = sha256_file(part)
            if expected is not None and digest != expected:
                part.unlink(missing_ok=True)
                raise ChecksumMismatchError(
                    f"download from {source.text} has sha256 {digest}, expected {expected}; "
                    "the partial file was deleted, retry or use another --source"
                )
            os.replace(part, target)
        except ChecksumMismatchError as error:
            logger.warning("%s", error)
            mismatch = error
            continue
        except _SourceFailed as error:
            logger.warning("download from %s failed: %s", source.text, error)
            failures.append(f"{source.text}: {error}")
            continue
        manifest.record(target, digest, source=source.text)
        manifest.save()
        return target
    if mismatch is not None:
        raise mismatch
    kept = [p.name for p in folder.glob("*" + PART_SUFFIX)]
    resume_hint = f"; the partial {kept[0]} is kept and the next attempt resumes it" if kept else ""
    raise WeightsDownloadError(
        "could not download the checkpoint: " + "; ".join(failures) + resume_hint
        + " (check the network, or download it by hand and pass --weights PATH)"
    )


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
    return _fetch_http(source.url, part, options)


def _fetch_hugging_face(source: Source, part: Path) -> Path:
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
        raise _SourceFailed(_first_line(error)) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return part


def _fetch_http(url: str, part: Path, options: DownloadOptions) -> Path:
    last_problem = "no attempt made"
    with requests.Session() as session:
        for attempt in range(options.resume_attempts + 1):
            if attempt:
                time.sleep(options.retry_delay_s * attempt)
                logger.info("resuming %s from byte %d", url, _size_or_zero(part))
            try:
                _transfer(session, url, part, options)
                return part
            except _ConnectionCut as cut:
                last_problem = str(cut)
            except (requests.ConnectionError, requests.Timeout) as error:
                last_problem = f"connection failed ({_first_line(error)})"
    raise _SourceFailed(f"{last_problem}; gave up after {options.resume_attempts + 1} attempts")


def _transfer(session: requests.Session, url: str, part: Path, options: DownloadOptions) -> None:
    have = _size_or_zero(part)
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = (options.connect_timeout_s, options.read_timeout_s)
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and have:
            # Range past the end: either the .part is already complete or it is stale.
            if _content_range(response.headers.get("Content-Range", ""))[1] == have:
                return
            part.unlink()
            raise _ConnectionCut("the partial file did not fit the server's file; restarting")
        if response.status_code >= 400:
            raise _SourceFailed(f"HTTP {response.status_code} {response.reason or ''}".strip())
        if response.status_code == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _ConnectionCut("the server resumed at the wrong offset; restarting")
            mode = "ab"
        else:
            # 200: the server ignored the Range header (or there was none); start over.
            have, mode = 0, "wb"
            total = _int_or_none(response.headers.get("Content-Length"))
        _check_disk_space(part.parent, None if total is None else total - have)
        bar = ByteProgress(part.name.removesuffix(PART_SUFFIX), total, have, options)
        try:
            with open(part, mode) as handle:
                for chunk in response.iter_content(chunk_size=options.chunk_size):
                    handle.write(chunk)
                    bar.advance(len(chunk))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            raise _ConnectionCut(
                f"connection lost after {_size_or_zero(part)} bytes ({_first_line(error)})"
            ) from error
        finally:
            bar.finish()
    size = _size_or_zero(part)
    if total is not None and size < total:
        raise _ConnectionCut(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _SourceFailed(f"server sent {size} bytes but announced {total}")


def _check_disk_space(folder: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise WeightsDownloadError(
            f"not enough disk space in {folder}: the checkpoint needs {_megabytes(needed)}, "
            f"{_megabytes(free)} free; free some space or choose another folder with --dir"
        )


def _content_range(header: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000)."""
    try:
        unit, _, spec = header.strip().partition(" ")
        span, _, total_text = spec.partition("/")
        start = None if span == "*" else int(span.split("-")[0])
        total = None if total_text in ("", "*") else int(total_text)
        return (start, total) if unit == "bytes" else (None, None)
    except ValueError:
        return None, None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


class ByteProgress:
    """A byte counter on stderr: a redrawn bar on a terminal, a line every 10 % elsewhere."""

    _REDRAW_EVERY_S = 0.2

    def __init__(self, label: str, total: int | None, done: int, options: DownloadOptions):
        self.label = label
        self.total = total
        self.done = done
        self.enabled = options.progress
        self.stream = options.progress_stream or sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._start_bytes = done
        self._last_draw = 0.0
        self._last_tenth = -1
        self._finished = False

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if self.interactive:
            if now - self._last_draw >= self._REDRAW_EVERY_S:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        elif self.total:
            tenth = self.done * 10 // self.total
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def finish(self) -> None:
        if not self.enabled or self._finished:
            return
        self._finished = True
        if self.interactive:
            self.stream.write("\r" + self._line() + "\n")
        elif not self.total or self.done * 10 // self.total == self._last_tenth:
            return  # the last line already shows where it stopped
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = (self.done - self._start_bytes) / elapsed
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * 30)
            bar = "#" * filled + "-" * (30 - filled)
            return (
                f"{self.label} [{bar}] {share:4.0%} {_megabytes(self.done)} / "
                f"{_megabytes(self.total)} {_megabytes(rate)}/s"
            )
        return f"{self.label} {_megabytes(self.done)} {_megabytes(rate)}/s"
