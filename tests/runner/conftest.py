"""Fixtures for the runner tests: a fake ComfyUI server on loopback (see ``fake_server.py``).

* ``comfy_server``: a started :class:`FakeComfyServer` with fast default settings; change its
  ``config`` (a :class:`FakeConfig`) or call ``add_fault(...)`` inside the test.
* ``make_comfy_server(config=None, object_info=None)``: a factory for tests that need several servers
  or a special object_info; every server it makes is stopped at the end of the test.
* ``dead_server_url``: a loopback URL on which nothing listens (server down).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_server import FakeComfyServer, FakeConfig  # noqa: E402


@pytest.fixture
def make_comfy_server() -> Iterator[Callable[..., FakeComfyServer]]:
    servers: list[FakeComfyServer] = []

    def make(config: FakeConfig | None = None, object_info: dict[str, Any] | None = None) -> FakeComfyServer:
        server = FakeComfyServer(config or FakeConfig(), object_info=object_info).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def comfy_server(make_comfy_server: Callable[..., FakeComfyServer]) -> FakeComfyServer:
    return make_comfy_server()


@pytest.fixture
def dead_server_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
