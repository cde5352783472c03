"""The server's base URL as given by a user, and the websocket URL beside it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "http://127.0.0.1:8188"


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


def websocket_url(server: str, client_id: str) -> str:
    """The ``/ws`` URL at the same base (and path prefix) as ``server``."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", f"clientId={client_id}", ""))
