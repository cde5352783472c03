"""What the blocking and the asyncio client share besides the protocol core: settings and identity."""

from __future__ import annotations

from runner.client.protocol import ComfyProtocol
from runner.client.retry import RetryPolicy


class ClientBase:
    """Builds the :class:`ComfyProtocol` a client's transport runs, and reads its settings through.

    ``server``: base URL (``host:port`` or ``http(s)://host:port/prefix``); ``token``: sent as
    ``Authorization: Bearer``, never shown in ``repr`` or logs; ``timeout`` / ``connect_timeout``:
    seconds for each HTTP read / connection; ``poll_interval``: seconds between ``/history`` looks;
    ``retry``: backoff for transient failures; ``client_id``: our websocket's id (random by
    default); ``use_websocket``: False polls history only; ``max_connections``: the HTTP pool's size.
    A client subclass opens its transports in :meth:`_open_transports`.
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        poll_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        client_id: str | None = None,
        use_websocket: bool = True,
        max_connections: int = 100,
    ) -> None:
        self.protocol = ComfyProtocol(server, timeout=timeout, connect_timeout=connect_timeout,
                                      poll_interval=poll_interval, retry=retry, client_id=client_id,
                                      use_websocket=use_websocket)
        self._token = token
        self._open_transports(token, max_connections)

    def _open_transports(self, token: str | None, max_connections: int) -> None:
        raise NotImplementedError

    @property
    def server(self) -> str:
        return self.protocol.server

    @property
    def client_id(self) -> str:
        return self.protocol.client_id

    @property
    def retry(self) -> RetryPolicy:
        return self.protocol.retry

    @property
    def output_classes(self) -> set[str]:
        return self.protocol.output_classes

    def __repr__(self) -> str:  # never shows the token
        return (f"{type(self).__name__}(server={self.server!r}, client_id={self.client_id!r}, "
                f"token={'set' if self._token else 'none'})")

    def request_cancel(self) -> None:
        """Ask a running wait to cancel its prompt at the next turn of its loop (within one poll
        interval), or a submit not yet posted to post nothing. Safe to call from a signal handler
        or another thread."""
        self.protocol.request_cancel()

    @property
    def cancel_requested(self) -> bool:
        return self.protocol.cancel_flag.is_set()
