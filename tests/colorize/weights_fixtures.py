"""Shared pieces for the weights tests: a small synthetic checkpoint and a loopback HTTP server.

The synthetic tensors follow the project's test-weights rule (tests/fixtures/make_test_weights.py)
for a handful of real ColorMNet keys, so files stay a few kilobytes while keeping real names,
shapes and dtypes. Tests point the architecture check at that small spec.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import torch

import colorize.weights as weights
import colorize.weights.checkpoint as checkpoint
import colorize.weights.locations as locations

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_JSON = REPO_ROOT / "colorize" / "model" / "checkpoint_spec.json"

# A few real keys: a conv weight, a BatchNorm with its buffers (incl. an int64 counter), and the
# output head that has its own gain in the rule.
SMALL_SPEC_KEYS = (
    "key_encoder.conv1.weight",
    "key_encoder.bn1.weight",
    "key_encoder.bn1.bias",
    "key_encoder.bn1.running_mean",
    "key_encoder.bn1.running_var",
    "key_encoder.bn1.num_batches_tracked",
    "decoder.pred.weight",
    "decoder.pred.bias",
)


def _load_rule_module():
    path = REPO_ROOT / "tests" / "fixtures" / "make_test_weights.py"
    spec = importlib.util.spec_from_file_location("make_test_weights", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


make_test_weights = _load_rule_module()


def full_spec_entries() -> list[dict]:
    return json.loads(SPEC_JSON.read_text())["entries"]


def small_spec_entries() -> list[dict]:
    by_key = {entry["key"]: entry for entry in full_spec_entries()}
    return [by_key[key] for key in SMALL_SPEC_KEYS]


def small_spec() -> weights.CheckpointSpec:
    return weights.CheckpointSpec.from_entries(small_spec_entries())


def small_state_dict() -> dict[str, torch.Tensor]:
    return dict(make_test_weights.build_state_dict(small_spec_entries()))


def small_checkpoint_bytes(tmp_path: Path) -> bytes:
    """The small synthetic checkpoint as torch.save writes it (zip format)."""
    path = tmp_path / "synthetic-source.pth"
    torch.save(small_state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def isolated_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate from the real cache, checkout and environment; use the small spec."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLORIZE_CACHE_DIR", str(cache))
    for name in ("COLORIZE_WEIGHTS", "COLORIZE_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    # A test that downloads names its loopback source; any other download fails at once
    # (port 9 on loopback refuses) instead of reaching the real release on the internet.
    monkeypatch.setenv("COLORIZE_WEIGHTS_SOURCES", "http://127.0.0.1:9/no-download-in-tests.pth")
    # The same for hf:// sources: the hub's host is looked up before huggingface_hub is called.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    # Loopback requests must never go through a proxy configured on the machine.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(locations, "checkout_checkpoints_dir", lambda: None)
    monkeypatch.setattr(checkpoint, "default_spec", small_spec)
    return cache


@dataclass
class CheckpointServer:
    """Serves byte strings over loopback HTTP with Range support and scripted failures."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_first_request_after: dict[str, int] = field(default_factory=dict)
    # HTTP statuses answered, in order, to the first requests for a path (e.g. [503, 503]).
    statuses_first: dict[str, list[int]] = field(default_factory=dict)
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_for(self, path: str) -> list[str | None]:
        return [range_header for seen, range_header in self.requests if seen == path]


def _handler_for(server_state: CheckpointServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
            pass  # keep test output clean

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            range_header = self.headers.get("Range")
            first_time = not server_state.requests_for(self.path)
            server_state.requests.append((self.path, range_header))
            scripted = server_state.statuses_first.get(self.path)
            if scripted:
                self.send_error(scripted.pop(0))
                return
            data = server_state.files.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            cut = server_state.cut_first_request_after.get(self.path)
            if cut is not None and first_time:
                self._send_then_drop(data, cut)
                return
            start = 0
            if range_header and server_state.honour_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(body)

        def _send_then_drop(self, data: bytes, keep: int) -> None:
            """Announce the whole file, send ``keep`` bytes, then cut the connection."""
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:keep])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    return Handler


@pytest.fixture
def checkpoint_server() -> Iterator[CheckpointServer]:
    state = CheckpointServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
