"""The asyncio HTTP transport of :class:`runner.AsyncComfyClient`: one pooled httpx2 client.

httpx2 is the maintained line of httpx (same API), and huggingface-hub, a base dependency, already
installs it. Like :class:`~runner.client.http.SyncHttp` it performs
:class:`~runner.client.actions.Send` and :class:`~runner.client.actions.Download` and answers with
outcomes; what to retry is decided by the protocol core.
"""

from __future__ import annotations

import httpx2

from runner.client.actions import (
    Download,
    DownloadOutcome,
    Reply,
    Send,
    SendOutcome,
    StreamBroken,
    Unreachable,
    WriteFailed,
)
from runner.client.http import CHUNK, USER_AGENT, PartialFile, open_uploads


class AsyncHttp:
    """HTTP for one base URL; the token is sent as ``Authorization: Bearer`` and never logged."""

    def __init__(self, server: str, token: str | None, *, max_connections: int = 100) -> None:
        self.server = server
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Proxy and certificate settings come from the environment, as for the blocking client.
        self._client = httpx2.AsyncClient(headers=headers,
                                          limits=httpx2.Limits(max_connections=max_connections,
                                                               max_keepalive_connections=max_connections))

    async def close(self) -> None:
        await self._client.aclose()

    @staticmethod
    def _timeout(action: Send | Download) -> httpx2.Timeout:
        return httpx2.Timeout(action.timeout, connect=action.connect_timeout)

    async def send(self, action: Send) -> SendOutcome:
        files, handles = open_uploads(action)
        try:
            response = await self._client.request(
                action.method, self.server + action.path, params=action.params, json=action.json, data=action.data,
                files=files, timeout=self._timeout(action),
            )
            return Reply(response.status_code, response.reason_phrase, response.headers, response.content)
        except httpx2.TransportError as exc:
            return Unreachable(type(exc).__name__)
        finally:
            for handle in handles:
                handle.close()

    async def download(self, action: Download) -> DownloadOutcome:
        started = False
        try:
            async with self._client.stream("GET", self.server + "/view", params=action.params,
                                           timeout=self._timeout(action)) as response:
                if response.status_code >= 300:
                    return Reply(response.status_code, response.reason_phrase, response.headers)
                started = True
                with PartialFile(action.target) as partial:
                    async for chunk in response.aiter_bytes(CHUNK):
                        partial.write(chunk)
            return partial.complete()
        except httpx2.TransportError as exc:
            return StreamBroken(type(exc).__name__) if started else Unreachable(type(exc).__name__)
        except OSError as exc:
            return WriteFailed(action.target, exc.strerror or str(exc))
