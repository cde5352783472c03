"""The blocking HTTP transport of :class:`runner.ComfyClient`: a pooled requests session.

It performs :class:`~runner.client.actions.Send` and :class:`~runner.client.actions.Download` and
answers with outcomes; what to retry is decided by the protocol core, not here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, BinaryIO

import requests
from requests.adapters import HTTPAdapter

from runner.client.actions import (
    Download,
    Downloaded,
    DownloadOutcome,
    Reply,
    Send,
    SendOutcome,
    StreamBroken,
    Unreachable,
    WriteFailed,
)

CHUNK = 1024 * 1024
USER_AGENT = "comfy-run/0.1"


class PartialFile:
    """A download written beside its target (``.NAME.part``), hashed on the way, renamed when complete.

    Leaving the ``with`` block by an exception removes the partial file; :meth:`complete` renames it.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(f".{target.name}.part")
        self.size = 0
        self._digest = hashlib.sha256()
        self._file: BinaryIO | None = None

    def __enter__(self) -> "PartialFile":
        self._file = self.path.open("wb")
        return self

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._digest.update(chunk)
        self.size += len(chunk)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._file is not None:
            self._file.close()
        if exc_type is not None:
            self.path.unlink(missing_ok=True)

    def complete(self) -> Downloaded:
        try:
            os.replace(self.path, self.target)
        except OSError:
            self.path.unlink(missing_ok=True)
            raise
        return Downloaded(self.size, self._digest.hexdigest())


def open_uploads(action: Send) -> tuple[dict[str, Any] | None, list[BinaryIO]]:
    """The multipart ``files`` argument of ``action`` (each file opened afresh) and the handles to close."""
    handles = {field: path.open("rb") for field, path in (action.files or {}).items()}
    files = {field: (action.files[field].name, handle) for field, handle in handles.items()} if action.files else None
    return files, list(handles.values())


class SyncHttp:
    """HTTP for one base URL; the token is sent as ``Authorization: Bearer`` and never logged."""

    def __init__(self, server: str, token: str | None, *, max_connections: int = 100) -> None:
        self.server = server
        self._session = requests.Session()
        pool = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections)
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, pool)
        self._session.headers["User-Agent"] = USER_AGENT
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def send(self, action: Send) -> SendOutcome:
        files, handles = open_uploads(action)
        try:
            response = self._session.request(
                action.method, self.server + action.path, params=action.params, json=action.json, data=action.data,
                files=files, timeout=(action.connect_timeout, action.timeout),
            )
            return Reply(response.status_code, response.reason or "", response.headers, response.content)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            return Unreachable(type(exc).__name__)
        finally:
            for handle in handles:
                handle.close()

    def download(self, action: Download) -> DownloadOutcome:
        try:
            response = self._session.get(self.server + "/view", params=action.params, stream=True,
                                         timeout=(action.connect_timeout, action.timeout))
        except (requests.ConnectionError, requests.Timeout) as exc:
            return Unreachable(type(exc).__name__)
        with response:
            if response.status_code >= 300:
                return Reply(response.status_code, response.reason or "", response.headers)
            try:
                with PartialFile(action.target) as partial:
                    for chunk in response.iter_content(CHUNK):
                        partial.write(chunk)
                return partial.complete()
            except requests.RequestException as exc:
                return StreamBroken(str(exc) or type(exc).__name__)
            except OSError as exc:
                return WriteFailed(action.target, exc.strerror or str(exc))
