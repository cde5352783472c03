"""HTTP with timeouts and retries: the transport every ComfyUI endpoint call goes through."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from runner.client.retry import Deadline, RetryPolicy, parse_retry_after
from runner.errors import ProtocolError, ServerUnreachableError

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8188"
# Statuses worth another try: rate limiting and the server (or a proxy in front of it) in trouble.
RETRY_STATUSES = {429, 500, 502, 503, 504}


def normalise_server(url: str | None) -> str:
    """``host:port`` or a full URL (with an optional path prefix) -> ``scheme://host:port/prefix``.

    >>> normalise_server("127.0.0.1:8188")
    'http://127.0.0.1:8188'
    >>> normalise_server("https://example.com/comfy/")
    'https://example.com/comfy'
    """
    url = (url or DEFAULT_SERVER).strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid server URL {url!r}: use http(s)://host:port")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))



class HttpClient:
    """One ComfyUI base URL, a pooled session, and :meth:`request` / :meth:`get_json` with retries.

    Idempotent requests are retried with backoff on connection errors, 5xx and 429 (honouring
    ``Retry-After``); other statuses fail at once. The token is sent as ``Authorization: Bearer``
    and never logged.
    """

    def __init__(self, server: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 connect_timeout: float = 5.0, retry: RetryPolicy | None = None) -> None:
        self.server = normalise_server(server)
        self._token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or RetryPolicy()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "comfy-run/0.1"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def _url(self, path: str) -> str:
        return self.server + path

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        accept: tuple[int, ...] = (),
        deadline: Deadline | None = None,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One HTTP request with timeouts and retries. Returns 2xx (or a status in ``accept``)."""
        policy = retry or self.retry
        attempts = policy.retries + 1 if idempotent else 1
        deadline = deadline or Deadline(None)
        last_error: Exception | None = None
        # Uploads pass a factory so each attempt re-opens the file from its start.
        files_factory = kwargs.pop("files_factory", None)
        for attempt in range(attempts):
            if attempt and deadline.expired():
                break
            retry_after: float | None = None
            call_kwargs = dict(kwargs)
            opened: list[Any] = []
            if files_factory is not None:
                call_kwargs["files"], opened = files_factory()
            read_timeout = max(0.05, deadline.cap(self.timeout))
            try:
                response = self._session.request(
                    method, self._url(path), timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                    stream=stream, **call_kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                log.debug("%s %s failed (attempt %d): %s", method, path, attempt + 1, type(exc).__name__)
                last_error = ServerUnreachableError(
                    f"cannot reach ComfyUI at {self.server} ({type(exc).__name__}); is the server running? "
                    "Check --server / COMFYUI_API_URL"
                )
            else:
                if response.status_code < 300 or response.status_code in accept:
                    return response
                body = response.text[:200].strip() if not stream else ""
                response.close()
                if response.status_code in RETRY_STATUSES:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    last_error = ProtocolError(
                        f"{method} {path} answered {response.status_code} {response.reason}"
                        f"{f': {body.splitlines()[0]}' if body else ''}", status=response.status_code)
                else:
                    hint = " (check --token / COMFYUI_API_KEY)" if response.status_code in (401, 403) else ""
                    raise ProtocolError(f"{method} {path} answered {response.status_code} {response.reason}{hint}",
                                        status=response.status_code) from None
            finally:
                for handle in opened:
                    handle.close()
            if attempt + 1 < attempts:
                pause = deadline.cap(policy.delay(attempt, retry_after))
                log.debug("retrying %s %s in %.2fs", method, path, pause)
                time.sleep(pause)
        assert last_error is not None
        raise last_error

    def get_json(self, path: str, *, params: dict[str, Any] | None = None, deadline: Deadline | None = None,
                 retry: RetryPolicy | None = None, accept: tuple[int, ...] = ()) -> Any:
        """GET a JSON document; malformed JSON counts as a retryable failure."""
        policy = retry or self.retry
        deadline = deadline or Deadline(None)
        for attempt in range(policy.retries + 1):
            response = self.request("GET", path, params=params, deadline=deadline, retry=policy, accept=accept)
            if response.status_code in accept and response.status_code >= 300:
                return None
            try:
                return response.json()
            except ValueError:
                error = ProtocolError(f"GET {path} returned malformed JSON ({response.text[:60]!r})")
                if attempt == policy.retries or deadline.expired():
                    raise error from None
                time.sleep(deadline.cap(policy.delay(attempt)))
        raise AssertionError("unreachable")
