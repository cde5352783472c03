"""Bring one HTTP(S) file to a ``.part`` file: Range resume, retries only where they can help.

What is worth another try: a timeout, an HTTP 5xx or 429, a connection cut mid-transfer.
What is not: a host name that does not resolve, a refused or unreachable connection, a TLS
failure, any other HTTP 4xx -- another try gives the same answer, so the caller moves on to the
next mirror at once. Failures are described in a few words (:func:`describe_network_error`),
never as the nested exception text of requests and urllib3.
"""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

import requests

from colorize.weights.errors import WeightsDownloadError
from colorize.weights.options import DownloadOptions
from colorize.weights.progress import ByteProgress, megabytes

logger = logging.getLogger(__name__)

PART_SUFFIX = ".part"

# HTTP answers that mean "busy or broken for now" rather than "no".
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_DETAIL = 120


class SourceFailed(Exception):
    """This source cannot deliver the file; try the next one.

    ``where`` is what failed (the host for a network fault, the URL for an HTTP answer about
    the file), ``reason`` a few words; ``str()`` is the one line ``where: reason``.
    """

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class _Transient(Exception):
    """A failure another try may cure; the ``.part`` file keeps what arrived."""


def fetch_http(url: str, host: str, part: Path, options: DownloadOptions) -> Path:
    """Bring the complete file at ``url`` to ``part`` and return that path.

    Raises :class:`SourceFailed` with a short reason when the source cannot deliver.
    """
    attempts = options.resume_attempts + 1
    problem = "no attempt made"
    with requests.Session() as session:
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                have = size_or_zero(part)
                # Only a .part with bytes in it is resumed; anything else starts over.
                action = f"resuming from byte {have}" if have else "trying again"
                logger.info("%s: %s; %s (try %d of %d)", host, problem, action, attempt, attempts)
                time.sleep(options.retry_delay_s * (attempt - 1))
            try:
                _transfer(session, url, part, options)
                return part
            except _Transient as transient:
                problem = str(transient)
            except requests.RequestException as error:
                text, worth_retrying = describe_network_error(error, options)
                if not worth_retrying:
                    raise SourceFailed(host, text) from None
                problem = text
    tries = f"; gave up after {attempts} tries" if attempts > 1 else ""
    raise SourceFailed(host, problem + tries)


def _transfer(session: requests.Session, url: str, part: Path, options: DownloadOptions) -> None:
    have = size_or_zero(part)
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = (options.connect_timeout_s, options.read_timeout_s)
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and have:
            # Range past the end: either the .part is already complete or it is stale.
            if _content_range(response.headers.get("Content-Range", ""))[1] == have:
                return
            part.unlink()
            raise _Transient("the partial file did not fit the server's file; restarting")
        status = f"HTTP {response.status_code} {response.reason or ''}".strip()
        if response.status_code in _TRANSIENT_STATUS:
            raise _Transient(status)
        if response.status_code >= 400:
            raise SourceFailed(url, status)
        if response.status_code == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _Transient("the server resumed at the wrong offset; restarting")
            mode = "ab"
        else:
            # 200: the server ignored the Range header (or there was none); start over.
            have, mode = 0, "wb"
            total = _int_or_none(response.headers.get("Content-Length"))
        _check_disk_space(part.parent, None if total is None else total - have)
        bar = ByteProgress(
            part.name.removesuffix(PART_SUFFIX),
            total,
            have,
            enabled=options.progress,
            stream=options.progress_stream,
        )
        try:
            with open(part, mode) as handle:
                for chunk in response.iter_content(chunk_size=options.chunk_size):
                    handle.write(chunk)
                    bar.advance(len(chunk))
        except requests.RequestException as error:
            text, _ = describe_network_error(error, options)
            raise _Transient(f"connection lost after {size_or_zero(part)} bytes ({text})") from None
        finally:
            bar.finish()
    size = size_or_zero(part)
    if total is not None and size < total:
        raise _Transient(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise SourceFailed(url, f"the server sent {size} bytes but announced {total}")


def describe_network_error(
    error: BaseException, options: DownloadOptions | None = None
) -> tuple[str, bool]:
    """A few words for what went wrong, and whether another try could help.

    requests wraps urllib3's error, which wraps the socket's; the cause that matters is found by
    walking that chain rather than by reading the (long, nested) message.
    """
    chain = list(_causes(error))
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        type(e).__name__ == "NameResolutionError" for e in chain
    ):
        return "host name does not resolve (offline, or a typo in the URL?)", False
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused", False
    for e in chain:
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network is unreachable", False
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS/SSL failure ({_innermost_detail(chain)})", False
    connect_s = options.connect_timeout_s if options else None
    read_s = options.read_timeout_s if options else None
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return (f"no answer within {connect_s:g} s" if connect_s else "connect timeout"), True
    if isinstance(error, requests.exceptions.ReadTimeout) or any(
        isinstance(e, (socket.timeout, TimeoutError)) for e in chain
    ):
        return (f"the server sent nothing for {read_s:g} s" if read_s else "read timeout"), True
    return f"connection failed ({_innermost_detail(chain)})", True


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps: ``__cause__``, ``__context__``, urllib3's ``reason``
    and exceptions passed as arguments (requests hands urllib3's error over that way)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        pending += [e for e in linked if isinstance(e, BaseException)]


def _innermost_detail(chain: list[BaseException]) -> str:
    """The operating system's words for the deepest error (``Connection reset by peer``)."""
    for e in reversed(chain):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    return first_line(chain[-1]) if chain else "unknown error"


def first_line(error: BaseException, limit: int = _MAX_DETAIL) -> str:
    """The first line of an error's text, shortened to ``limit`` characters."""
    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_disk_space(folder: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise WeightsDownloadError(
            f"not enough disk space in {folder}: the checkpoint needs {megabytes(needed)}, "
            f"{megabytes(free)} free; free some space or choose another folder with --dir"
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


def size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
