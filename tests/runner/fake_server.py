"""A fake ComfyUI server for the runner tests: real HTTP and real WebSocket on one loopback port.

It reproduces what ``/work/shared/comfyui/transcripts`` recorded from ComfyUI 0.33 closely enough for
a client to be tested end to end: ``/prompt`` validation (400 + ``node_errors``), the websocket run
order (``status``, ``execution_start``, ``execution_cached``, ``executing``, ``progress``, ``executed``,
``execution_success`` / ``execution_error`` / ``execution_interrupted``, ``status``, ``executing{null}``),
binary preview frames, ``/history``, ``/view``, ``/upload/image`` renaming, ``/queue``, ``/interrupt``,
``/object_info``, ``/models/{folder}``; plus switchable races and faults (see :class:`FakeConfig` and
:class:`Fault`).

Usage::

    server = FakeComfyServer(FakeConfig(node_delay=0.01)).start()
    ... use server.url ("http://127.0.0.1:PORT") ...
    server.stop()

or through the ``comfy_server`` / ``make_comfy_server`` fixtures of ``tests/runner/conftest.py``.
Every route exists at ``/x`` and ``/api/x`` like the real server. The websocket is upgraded by the
same HTTP server (``/ws?clientId=...``) using the sans-I/O protocol of the ``websockets`` package.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import itertools
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FILE_TYPES = ("input", "output", "temp")
# Model-loader inputs whose combo lists are folder listings on a real server.
MODEL_INPUT_FOLDERS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "upscale_model_name": "upscale_models",
}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
# A tiny valid 1x1 PNG; outputs are this plus a marker so every file has distinct bytes.
NEVER_CACHED = frozenset({"SaveImageWebsocket"})
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2b3a7e40000000049454e44ae426082"
)
CONTENT_TYPES = {
    ".png": "image/png",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".flac": "audio/flac",
    ".txt": "text/plain",
}


def load_object_info() -> dict[str, Any]:
    """The full ``/object_info`` recorded from ComfyUI 0.33 (634 classes)."""
    with gzip.open(DATA_DIR / "object_info_full.json.gz", "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    return data.get("object_info", data)


_OBJECT_INFO_CACHE: dict[str, Any] | None = None


def default_object_info() -> dict[str, Any]:
    global _OBJECT_INFO_CACHE
    if _OBJECT_INFO_CACHE is None:
        _OBJECT_INFO_CACHE = load_object_info()
    return json.loads(json.dumps(_OBJECT_INFO_CACHE))  # a private copy: servers patch combo lists


@dataclass
class Fault:
    """A scripted misbehaviour for requests whose path starts with ``path`` (after the /api prefix).

    kind: ``"500"`` (text/plain 500), ``"503"`` (with ``Retry-After`` when ``retry_after`` is set),
    ``"malformed"`` (200 with a broken JSON body), ``"drop"`` (close the TCP connection without an
    answer), ``"delay"`` (sleep ``delay`` seconds, then answer normally), ``"drop_after"`` (POST /prompt
    only: queue the prompt, then drop the connection instead of answering).
    ``"status"`` (answer ``status`` with an empty body), ``"truncate"`` (``/view`` only: announce the
    file's length, send half of it, drop the connection).
    ``times`` is how many matching requests it affects (``-1`` = all).
    """

    path: str
    kind: str
    method: str | None = None
    times: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    status: int = 404


@dataclass
class FakeConfig:
    """Behaviour switches of :class:`FakeComfyServer`; all of them may be changed while it runs."""

    node_delay: float = 0.0  # seconds each executed node takes
    step_delay: float = 0.0  # seconds per progress step
    progress_steps: dict[str, int] = field(default_factory=lambda: {"ColorTransfer": 4})
    # KSampler-like nodes report their own ``steps`` input as progress max.
    history_delay: float = 0.0  # completion frames are sent this long before history is written
    events_before_reply: bool = False  # first websocket frames of a run go out before the POST reply
    ws_accept: bool = True  # False: /ws answers 404 (client must poll)
    ws_mute: bool = False  # sockets connect and get ``status`` but never see private run events
    ws_drop_after: int | None = None  # close the client's socket after this many private frames of a run
    preview_frames: bool = False  # binary preview frame on each progress step
    preview_format: int = 2  # image format code of those preview frames (1 JPEG, 2 PNG)
    feature_flags: bool = True  # False: an older server that ignores the metadata negotiation (event 1 only)
    interrupt_latency: float = 0.0  # extra delay before an interrupt takes effect
    fail: dict[str, tuple[str, str]] = field(default_factory=dict)  # node id or class -> (exc type, message)
    extra_outputs: dict[str, dict[str, list]] = field(default_factory=dict)  # node id -> extra output keys
    models: dict[str, list[str]] = field(default_factory=dict)  # folder -> file names
    require_token: str | None = None  # emulate an auth proxy: 401 unless "Authorization: Bearer <token>"
    paused: bool = False  # the worker does not start new prompts while True (queue stays pending)
    # SaveImage stores image_filter(bytes of the LoadImage file upstream) instead of a 1x1 PNG.
    image_filter: Callable[[bytes], bytes] | None = None


@dataclass
class _Job:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs_to_execute: list[str]
    client_id: str | None
    started: threading.Event = field(default_factory=threading.Event)

    def queue_item(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs_to_execute]


class _Interrupted(Exception):
    pass


class _NodeFailed(Exception):
    def __init__(self, node_id: str, class_type: str, exc_type: str, message: str) -> None:
        super().__init__(message)
        self.node_id, self.class_type, self.exc_type, self.message = node_id, class_type, exc_type, message


class _WsConn:
    """One accepted websocket: a sans-I/O protocol object bound to the handler's socket."""

    def __init__(self, sock: socket.socket, protocol: ServerProtocol, client_id: str) -> None:
        self.sock = sock
        self.protocol = protocol
        self.client_id = client_id
        self.lock = threading.Lock()
        self.open = True
        self.supports_metadata = False
        self.frames_seen = 0

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def send_json(self, message: dict[str, Any]) -> None:
        self._send(lambda: self.protocol.send_text(json.dumps(message).encode()))

    def send_binary(self, payload: bytes) -> None:
        self._send(lambda: self.protocol.send_binary(payload))

    def _send(self, queue_frame: Callable[[], None]) -> None:
        with self.lock:
            if not self.open:
                return
            try:
                queue_frame()
                self._flush()
            except Exception:  # the peer went away; the reader loop notices too
                self.open = False

    def drop(self) -> None:
        """Close the TCP connection abruptly, without a close frame (a network failure)."""
        with self.lock:
            self.open = False
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeComfyServer:
    """A loopback ComfyUI stand-in; see the module docstring."""

    def __init__(
        self,
        config: FakeConfig | None = None,
        *,
        object_info: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or FakeConfig()
        self.object_info = object_info if object_info is not None else default_object_info()
        self.faults: list[Fault] = []
        self.files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, name) -> bytes
        self.history: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self.executed_prompts: list[str] = []  # prompt ids in the order they started running
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[tuple[float, int, _Job]] = []
        self._running: _Job | None = None
        self._counter = itertools.count(1)
        self._tiebreak = itertools.count()
        self._interrupt_target: str | None = None
        self._file_counters: dict[tuple[str, str], int] = {}
        self._cache: dict[str, str] = {}  # node id -> signature of the last run that produced it
        self._posted: list[str] = []
        self._previous_outputs: dict[str, Any] = {}  # node id -> outputs, re-sent for cached nodes
        self._current_node: str | None = None
        self._sockets: dict[str, _WsConn] = {}
        self._all_sockets: list[_WsConn] = []
        self._stopping = False
        self._httpd = _HttpServer((host, port), _Handler)
        self._httpd.fake = self
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeComfyServer":
        for target in (lambda: self._httpd.serve_forever(poll_interval=0.02), self._worker):
            thread = threading.Thread(target=target, daemon=True, name="fake-comfy")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._interrupt_target = "*"
            self._wake.notify_all()
            sockets = list(self._all_sockets)
        for conn in sockets:
            conn.drop()
        self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "FakeComfyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests
    def add_fault(self, path: str, kind: str, **kwargs: Any) -> Fault:
        fault = Fault(path=path, kind=kind, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def add_file(self, folder_type: str, subfolder: str, name: str, data: bytes) -> None:
        with self._lock:
            self.files[(folder_type, subfolder, name)] = data

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self.config.paused = paused
            self._wake.notify_all()

    def queue_snapshot(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids)."""
        with self._lock:
            running = [self._running.prompt_id] if self._running else []
            return running, [job.prompt_id for _, _, job in self._pending]

    def posted_prompt_ids(self) -> list[str]:
        """The prompt id of every ``POST /prompt`` with a JSON body (client's or server-made), in order."""
        with self._lock:
            return list(self._posted)

    def drop_client_sockets(self) -> None:
        with self._lock:
            sockets = list(self._all_sockets)
        for conn in sockets:
            conn.drop()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()

    # ------------------------------------------------------------------ faults
    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times == 0 or not path.startswith(fault.path):
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    # ------------------------------------------------------------------ websocket registry
    def register_socket(self, conn: _WsConn) -> None:
        with self._lock:
            self._sockets[conn.client_id] = conn  # a newer socket takes the id over
            self._all_sockets.append(conn)
            running = self._running
            queue_remaining = len(self._pending) + (1 if running else 0)
        conn.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": queue_remaining}}, "sid": conn.client_id}})
        if running is not None and running.client_id == conn.client_id and self._current_node:
            # Reconnect mid-run: the real server re-announces the node without prompt_id.
            conn.send_json({"type": "executing", "data": {"node": self._current_node}})

    def unregister_socket(self, conn: _WsConn) -> None:
        with self._lock:
            conn.open = False
            if conn in self._all_sockets:
                self._all_sockets.remove(conn)
            # Faithful to ComfyUI: closing any socket deletes the id's registration, even if a
            # newer socket had taken the id over (that newer socket goes deaf).
            self._sockets.pop(conn.client_id, None)

    def _send_private(self, job: _Job, message: dict[str, Any]) -> None:
        if self.config.ws_mute:
            return
        with self._lock:
            conn = self._sockets.get(job.client_id) if job.client_id else None
        if conn is None:
            return
        conn.send_json(message)
        conn.frames_seen += 1
        limit = self.config.ws_drop_after
        if limit is not None and conn.frames_seen >= limit:
            self.config.ws_drop_after = None  # drop once
            conn.drop()

    def _send_binary(self, job: _Job, event: int, node_id: str, image: bytes, image_format: int = 2) -> None:
        if self.config.ws_mute:
            return
        with self._lock:
            conn = self._sockets.get(job.client_id) if job.client_id else None
        if conn is None:
            return
        if conn.supports_metadata:
            image_type = "image/jpeg" if image_format == 1 else "image/png"
            meta = json.dumps({"node_id": node_id, "prompt_id": job.prompt_id, "display_node_id": node_id,
                               "parent_node_id": None, "real_node_id": node_id, "image_type": image_type}).encode()
            conn.send_binary(struct.pack(">II", 4, len(meta)) + meta + image)
        else:
            conn.send_binary(struct.pack(">II", event, image_format) + image)

    def _websocket_images(self, job: _Job, nid: str, node: dict[str, Any]) -> None:
        """SaveImageWebsocket: one PNG frame per image of the batch, each after a ``progress`` step
        (value i of max n), as recorded [08]; the bytes name the prompt, node and index."""
        count, current = 1, node
        for _ in range(len(job.prompt)):  # the batch size of the first image source upstream
            inputs = current.get("inputs", {})
            if isinstance(inputs.get("batch_size"), int) and inputs["batch_size"] > 0:
                count = inputs["batch_size"]
                break
            link = next((v for v in inputs.values() if isinstance(v, list) and len(v) == 2), None)
            if link is None:
                break
            current = job.prompt.get(str(link[0]), {})
        for index in range(count):
            self._send_private(job, {"type": "progress", "data": {"value": index, "max": count,
                                                                  "prompt_id": job.prompt_id, "node": nid}})
            self._send_binary(job, 1, nid, PNG_1X1 + f"websocket {job.prompt_id} {nid} {index}".encode())

    def _broadcast_status(self) -> None:
        with self._lock:
            remaining = len(self._pending) + (1 if self._running else 0)
            sockets = list(self._sockets.values())
        for conn in sockets:
            conn.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}})

    def _broadcast_text(self, node_id: str, text: str) -> None:
        node = node_id.encode()
        payload = struct.pack(">II", 3, len(node)) + node + text.encode()
        with self._lock:
            sockets = list(self._sockets.values())
        for conn in sockets:
            conn.send_binary(payload)

    # ------------------------------------------------------------------ object info helpers
    def object_info_view(self) -> dict[str, Any]:
        """``/object_info`` with folder-listing combos filled from ``config.models`` and input files."""
        info = self.object_info
        for class_type, spec in info.items():
            for group in ("required", "optional"):
                for name, input_spec in (spec.get("input", {}).get(group) or {}).items():
                    if name in MODEL_INPUT_FOLDERS and isinstance(input_spec, list) and isinstance(input_spec[0], list):
                        input_spec[0] = list(self.config.models.get(MODEL_INPUT_FOLDERS[name], []))
                    if class_type == "LoadImage" and name == "image" and isinstance(input_spec[0], list):
                        with self._lock:
                            input_spec[0] = sorted(n for (t, s, n) in self.files if t == "input" and s == "")
                    if class_type == "LoadVideo" and name == "file" and len(input_spec) > 1:
                        with self._lock:  # new-style combo: the listing is in options (not filtered by type)
                            input_spec[1]["options"] = sorted(n for (t, s, n) in self.files if t == "input" and s == "")
        return info

    # ------------------------------------------------------------------ prompt validation
    def validate_prompt(self, prompt: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
        """(error or None, node_errors, output node ids that will run)."""
        info = self.object_info_view()
        for node_id, node in prompt.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            title = (node.get("_meta") or {}).get("title", class_type) if isinstance(node, dict) else None
            if class_type not in info:
                message = (f"Node '{title}' not found. The custom node may not be installed." if class_type
                           else f"Node '{title}' has no class_type. The workflow may be corrupted or a custom node is missing.")
                return ({"type": "missing_node_type", "message": message, "details": f"Node ID '#{node_id}'",
                         "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": title}}, {}, [])
        outputs = [nid for nid, node in prompt.items() if info[node["class_type"]].get("output_node")]
        if not outputs:
            return ({"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}, {}, [])
        node_errors: dict[str, Any] = {}
        good_outputs = []
        for out_id in outputs:
            bad = False
            for nid in self._dependencies(prompt, out_id):
                errors = self._validate_node(prompt, nid, info)
                if errors:
                    bad = True
                    entry = node_errors.setdefault(nid, {"errors": errors, "dependent_outputs": [], "class_type": prompt[nid]["class_type"]})
                    entry["dependent_outputs"].append(out_id)
            if not bad:
                good_outputs.append(out_id)
        if not good_outputs:
            return ({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                     "details": "", "extra_info": {}}, node_errors, [])
        return None, node_errors, good_outputs

    @staticmethod
    def _dependencies(prompt: dict[str, Any], node_id: str) -> list[str]:
        """Node ids ``node_id`` depends on (itself last), in execution order."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(nid: str) -> None:
            if nid in seen or nid not in prompt:
                return
            seen.add(nid)
            for value in prompt[nid].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2:
                    visit(str(value[0]))
            order.append(nid)

        visit(node_id)
        return order

    def _validate_node(self, prompt: dict[str, Any], node_id: str, info: dict[str, Any]) -> list[dict[str, Any]]:
        node = prompt[node_id]
        spec = info[node["class_type"]].get("input", {})
        inputs = node.get("inputs", {})
        errors = []
        for group in ("required", "optional"):
            for name, input_spec in (spec.get(group) or {}).items():
                if name not in inputs:
                    if group == "required":
                        errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                       "details": name, "extra_info": {"input_name": name}})
                    continue
                value = inputs[name]
                if isinstance(value, list):
                    if len(value) != 2:
                        errors.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                       "details": name, "extra_info": {"input_name": name, "received_value": value}})
                    elif str(value[0]) not in prompt:
                        errors.append({"type": "exception_during_inner_validation", "message": "Exception when validating inner node",
                                       "details": f"'{value[0]}'", "extra_info": {"input_name": name}})
                    continue
                problem = self._check_value(input_spec, value)
                if problem:
                    kind, message = problem
                    errors.append({"type": kind, "message": message, "details": f"{name}: {message}",
                                   "extra_info": {"input_name": name, "input_config": input_spec, "received_value": value}})
        return errors

    @staticmethod
    def _check_value(input_spec: Any, value: Any) -> tuple[str, str] | None:
        if not isinstance(input_spec, list) or not input_spec:
            return None
        kind = input_spec[0]
        options = input_spec[1] if len(input_spec) > 1 and isinstance(input_spec[1], dict) else {}
        choices = kind if isinstance(kind, list) else (options.get("options") if kind == "COMBO" else None)
        if choices is not None:
            if value not in choices:
                return "value_not_in_list", f"Value not in list: '{value}' not in {choices[:10]}"
            return None
        if kind in ("INT", "FLOAT"):
            try:
                number = int(value) if kind == "INT" else float(value)
            except (TypeError, ValueError):
                return "invalid_input_type", f"Failed to convert an input value to a {kind} value, {value}"
            if "min" in options and number < options["min"]:
                return "value_smaller_than_min", f"Value {number} smaller than min of {options['min']}"
            if "max" in options and number > options["max"]:
                return "value_bigger_than_max", f"Value {number} bigger than max of {options['max']}"
        return None

    # ------------------------------------------------------------------ queue
    def enqueue(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], _Job | None]:
        number = next(self._counter)
        if "prompt" not in body:
            return 400, {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}, None
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        with self._lock:
            self._posted.append(str(prompt_id))
        if not isinstance(prompt_id, str) or not UUID_RE.match(prompt_id):
            return 400, {"error": {"type": "invalid_prompt_id", "message": "Invalid prompt_id", "details": str(prompt_id), "extra_info": {}}, "node_errors": {}}, None
        prompt = body["prompt"]
        error, node_errors, outputs = self.validate_prompt(prompt)
        if error is not None:
            return 400, {"error": error, "node_errors": node_errors}, None
        if "number" in body:
            number = body["number"]
        elif body.get("front"):
            number = -number
        extra = dict(body.get("extra_data") or {})
        client_id = body.get("client_id")
        extra["client_id"] = client_id
        extra["create_time"] = int(time.time() * 1000)
        job = _Job(number, prompt_id, prompt, extra, outputs, client_id)
        with self._lock:
            heapq.heappush(self._pending, (float(number), next(self._tiebreak), job))
            self._wake.notify_all()
        self._broadcast_status()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}, job

    def delete_pending(self, ids: list[str]) -> None:
        with self._lock:
            self._pending = [item for item in self._pending if item[2].prompt_id not in ids]
            heapq.heapify(self._pending)
        self._broadcast_status()

    def clear_pending(self) -> None:
        with self._lock:
            self._pending = []
        self._broadcast_status()

    def interrupt(self, prompt_id: str | None) -> None:
        def apply() -> None:
            with self._lock:
                if self._running is None:
                    return
                if prompt_id is None or prompt_id == self._running.prompt_id:
                    self._interrupt_target = self._running.prompt_id

        if self.config.interrupt_latency:
            threading.Timer(self.config.interrupt_latency, apply).start()
        else:
            apply()

    def queue_json(self) -> dict[str, Any]:
        with self._lock:
            running = [self._running.queue_item()] if self._running else []
            # heap order, not sorted: like the real server
            pending = [job.queue_item() for _, _, job in self._pending]
        return {"queue_running": running, "queue_pending": pending}

    # ------------------------------------------------------------------ execution
    def _worker(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._pending or self.config.paused):
                    self._wake.wait(0.1)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._pending)
                self._running = job
                self._interrupt_target = None
                self.executed_prompts.append(job.prompt_id)
            try:
                self._run_job(job)
            except Exception:  # pragma: no cover - a bug in the fake itself
                log.exception("fake server failed running %s", job.prompt_id)
            finally:
                with self._lock:
                    self._running = None
                    self._current_node = None

    def _check_interrupt(self, job: _Job) -> None:
        with self._lock:
            if self._interrupt_target in (job.prompt_id, "*"):
                raise _Interrupted()

    def _run_job(self, job: _Job) -> None:
        self._broadcast_status()  # the "take" status (enqueue sent the "put" one)
        messages: list[list[Any]] = []

        def private(kind: str, data: dict[str, Any], record: bool = False) -> None:
            if record:
                messages.append([kind, data])
            self._send_private(job, {"type": kind, "data": data})

        def stamp() -> int:
            return int(time.time() * 1000)

        private("execution_start", {"prompt_id": job.prompt_id, "timestamp": stamp()}, record=True)
        job.started.set()
        order: list[str] = []
        for out_id in job.outputs_to_execute:
            for nid in self._dependencies(job.prompt, out_id):
                if nid not in order:
                    order.append(nid)
        signatures = {nid: self._signature(job.prompt, nid) for nid in order}
        # SaveImageWebsocket says it changed on every run, so the real server never caches it [08].
        cached = [nid for nid in order if self._cache.get(nid) == signatures[nid]
                  and job.prompt[nid].get("class_type") not in NEVER_CACHED]
        private("execution_cached", {"nodes": cached, "prompt_id": job.prompt_id, "timestamp": stamp()}, record=True)
        outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        status_str, completed = "success", True
        try:
            for nid in order:
                node = job.prompt[nid]
                if nid in cached:
                    if self._previous_outputs.get(nid):
                        outputs[nid] = self._previous_outputs[nid]
                        meta[nid] = self._meta(nid)
                        private("executed", {"node": nid, "display_node": nid, "output": outputs[nid], "prompt_id": job.prompt_id})
                    continue
                self._check_interrupt(job)
                with self._lock:
                    self._current_node = nid
                private("executing", {"node": nid, "display_node": nid, "prompt_id": job.prompt_id})
                self._execute_node(job, nid, node)
                produced = self._produce_outputs(job, nid, node)
                self._cache[nid] = signatures[nid]
                if produced is not None:
                    outputs[nid] = produced
                    meta[nid] = self._meta(nid)
                    self._previous_outputs[nid] = produced
                    private("executed", {"node": nid, "display_node": nid, "output": produced, "prompt_id": job.prompt_id})
            final = ("execution_success", {"prompt_id": job.prompt_id, "timestamp": stamp()})
        except _Interrupted:
            status_str, completed = "error", False
            final = ("execution_interrupted", {"prompt_id": job.prompt_id, "node_id": self._current_node,
                                               "node_type": job.prompt.get(self._current_node or "", {}).get("class_type"),
                                               "executed": [n for n in order if n in outputs], "timestamp": stamp()})
        except _NodeFailed as failure:
            status_str, completed = "error", False
            final = ("execution_error", {"prompt_id": job.prompt_id, "node_id": failure.node_id, "node_type": failure.class_type,
                                         "executed": [], "exception_message": failure.message, "exception_type": failure.exc_type,
                                         "traceback": ["  File \"fake.py\", line 1, in execute\n"], "current_inputs": {},
                                         "current_outputs": [], "timestamp": stamp()})
        private(*final, record=True)
        if self.config.history_delay:
            time.sleep(self.config.history_delay)  # the race: completion seen before history exists
        entry = {"prompt": job.queue_item(), "outputs": outputs,
                 "status": {"status_str": status_str, "completed": completed, "messages": messages}, "meta": meta}
        with self._lock:
            self.history[job.prompt_id] = entry
            self._running = None
            self._current_node = None
        self._broadcast_status()
        private("executing", {"node": None, "prompt_id": job.prompt_id})

    @staticmethod
    def _meta(nid: str) -> dict[str, Any]:
        return {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}

    def _signature(self, prompt: dict[str, Any], nid: str) -> str:
        parts = [json.dumps(prompt[d], sort_keys=True) for d in self._dependencies(prompt, nid)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def _execute_node(self, job: _Job, nid: str, node: dict[str, Any]) -> None:
        class_type = node["class_type"]
        steps = self.config.progress_steps.get(class_type)
        if steps is None and isinstance(node.get("inputs", {}).get("steps"), int):
            steps = node["inputs"]["steps"]
        if self.config.node_delay:
            time.sleep(self.config.node_delay)
        self._check_interrupt(job)
        for step in range(1, (steps or 0) + 1):
            if self.config.step_delay:
                time.sleep(self.config.step_delay)
            self._check_interrupt(job)
            self._send_private(job, {"type": "progress", "data": {"value": step, "max": steps, "prompt_id": job.prompt_id, "node": nid}})
            if self.config.preview_frames:
                self._send_binary(job, 1, nid, PNG_1X1 + f"preview {nid} {step}".encode(), self.config.preview_format)
        failure = self.config.fail.get(nid) or self.config.fail.get(class_type)
        if failure:
            raise _NodeFailed(nid, class_type, failure[0], failure[1])
        if class_type == "GetImageSize":
            self._broadcast_text(nid, "width: 64, height: 64\n batch size: 1")
        if class_type == "SaveImageWebsocket":
            self._websocket_images(job, nid, node)

    def _new_file(self, folder_type: str, prefix: str, ext: str, trailing: str = "_") -> dict[str, str]:
        subfolder, _, base = prefix.rpartition("/")
        with self._lock:
            key = (subfolder, base)
            counter = self._file_counters.get(key, 0) + 1
            self._file_counters[key] = counter
            name = f"{base}_{counter:05d}{trailing}{ext}"
            data = PNG_1X1 + f"{folder_type}/{subfolder}/{name}".encode() if ext == ".png" else f"fake {ext} {folder_type}/{subfolder}/{name}".encode() * 8
            self.files[(folder_type, subfolder, name)] = data
        return {"filename": name, "subfolder": subfolder, "type": folder_type}

    def _produce_outputs(self, job: _Job, nid: str, node: dict[str, Any]) -> dict[str, Any] | None:
        class_type = node["class_type"]
        inputs = node.get("inputs", {})
        prefix = str(inputs.get("filename_prefix", "ComfyUI"))
        produced: dict[str, Any] | None = None
        if class_type == "SaveImage":
            produced = {"images": [self._new_file("output", prefix, ".png")]}
            if self.config.image_filter is not None:
                self._filter_loaded_image(job, nid, produced["images"][0])
        elif class_type == "PreviewImage":
            produced = {"images": [self._new_file("temp", "ComfyUI_temp_fake", ".png")]}
        elif class_type in ("SaveAnimatedWEBP", "SaveAnimatedPNG"):
            ext = ".webp" if class_type.endswith("WEBP") else ".png"
            produced = {"images": [self._new_file("output", prefix, ext)], "animated": [True]}
        elif class_type in ("SaveVideo", "SaveWEBM"):
            produced = {"images": [self._new_file("output", prefix, ".mp4")], "animated": [True]}
        elif class_type.startswith("SaveAudio"):
            produced = {"audio": [self._new_file("output", prefix, ".flac", trailing="")]}
        elif class_type == "PreviewAny":
            source = inputs.get("source")
            produced = {"text": [json.dumps(source) if not isinstance(source, str) else source]}
        extra = self.config.extra_outputs.get(nid)
        if extra:
            produced = dict(produced or {})
            for key, items in extra.items():
                produced[key] = items
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        file_key = (item.get("type", "output"), item.get("subfolder", ""), item["filename"])
                        with self._lock:
                            self.files.setdefault(file_key, f"extra {file_key}".encode() * 4)
        return produced

    def _filter_loaded_image(self, job: _Job, nid: str, item: dict[str, str]) -> None:
        """Replace a saved file by ``config.image_filter`` applied to the LoadImage file it depends on."""
        loaders = [d for d in self._dependencies(job.prompt, nid) if job.prompt[d].get("class_type") == "LoadImage"]
        if not loaders or self.config.image_filter is None:
            return
        subfolder, _, name = str(job.prompt[loaders[0]].get("inputs", {}).get("image", "")).rpartition("/")
        with self._lock:
            source = self.files.get(("input", subfolder, name))
        if source is not None:
            filtered = self.config.image_filter(source)
            with self._lock:
                self.files[(item["type"], item["subfolder"], item["filename"])] = filtered

    # ------------------------------------------------------------------ uploads
    def store_upload(self, name: str, data: bytes, folder_type: str, subfolder: str, overwrite: bool) -> dict[str, str]:
        with self._lock:
            final = name
            if not overwrite:
                stem, dot, ext = name.rpartition(".")
                if not dot:
                    stem, ext = name, ""
                counter = 1
                while (folder_type, subfolder, final) in self.files:
                    if self.files[(folder_type, subfolder, final)] == data:
                        return {"name": final, "subfolder": subfolder, "type": folder_type}
                    final = f"{stem} ({counter}).{ext}" if dot else f"{stem} ({counter})"
                    counter += 1
            self.files[(folder_type, subfolder, final)] = data
        return {"name": final, "subfolder": subfolder, "type": folder_type}


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeComfyServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("fake comfy: " + format, *args)

    # -------------------------------------------------------------- plumbing
    @property
    def fake(self) -> FakeComfyServer:
        return self.server.fake

    def _reply(self, status: int, body: bytes = b"", content_type: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._reply(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _server_error(self) -> None:
        self._reply(500, b"500 Internal Server Error\n\nServer got itself in trouble", "text/plain; charset=utf-8")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/api/"):
            path = path[4:]
        return path, parse_qs(parts.query, keep_blank_values=True)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        path, query = self._route()
        body = self._body() if method == "POST" else b""
        with self.fake._lock:
            self.fake.requests.append((method, path, dict(self.headers.items())))
        token = self.fake.config.require_token
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            self._reply(401, b"401: Unauthorized", "text/plain; charset=utf-8")
            return
        fault = self.fake.take_fault(method, path)
        if fault is not None:
            if fault.kind == "delay":
                time.sleep(fault.delay)
            elif fault.kind == "500":
                self._server_error()
                return
            elif fault.kind == "503":
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                self._reply(503, b"Service Unavailable", "text/plain; charset=utf-8", headers)
                return
            elif fault.kind == "malformed":
                self._reply(200, b'{"prompt_id": "broken', "application/json; charset=utf-8")
                return
            elif fault.kind == "drop":
                self._drop()
                return
            elif fault.kind == "status":
                self._reply(fault.status)
                return
        handler = getattr(self, f"_{method.lower()}_{path.strip('/').split('/')[0] or 'root'}", None)
        if handler is None:
            self._reply(404, b"", "application/octet-stream")
            return
        handler(path, query, body, fault)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path, query = self._route()
        if path == "/ws":
            self._websocket(query)
            return
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    # -------------------------------------------------------------- websocket
    def _websocket(self, query: dict[str, list[str]]) -> None:
        fake = self.fake
        with fake._lock:
            fake.requests.append(("GET", "/ws", dict(self.headers.items())))
        if not fake.config.ws_accept or (
            fake.config.require_token is not None and self.headers.get("Authorization") != f"Bearer {fake.config.require_token}"
        ):
            self._reply(404 if not fake.config.ws_accept else 401, b"", "application/octet-stream")
            return
        client_id = (query.get("clientId") or [uuid.uuid4().hex])[0]
        # http.server has already consumed the handshake request; replay its bytes into the sans-I/O
        # protocol so its parser moves on to websocket frames.
        protocol = ServerProtocol()
        header_lines = "".join(f"{key}: {value}\r\n" for key, value in self.headers.items())
        protocol.receive_data(self.raw_requestline + header_lines.encode("latin-1") + b"\r\n")
        requests_parsed = [event for event in protocol.events_received() if isinstance(event, Request)]
        if not requests_parsed:
            self._reply(400)
            return
        response = protocol.accept(requests_parsed[0])
        protocol.send_response(response)
        for chunk in protocol.data_to_send():
            self.wfile.write(chunk)
        self.wfile.flush()
        self.close_connection = True
        if response.status_code != 101:
            return
        conn = _WsConn(self.connection, protocol, client_id)
        fake.register_socket(conn)
        first = True
        try:
            while conn.open:
                data = self.connection.recv(65536)
                with conn.lock:
                    if data:
                        protocol.receive_data(data)
                    else:
                        protocol.receive_eof()
                    events = protocol.events_received()
                    try:
                        conn._flush()  # pongs and the close handshake reply
                    except OSError:
                        break
                for event in events:
                    if isinstance(event, Frame) and event.opcode == Opcode.TEXT and first:
                        self._feature_flags(conn, event.data)
                    if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
                        first = False
                if not data or protocol.close_rcvd is not None:
                    break
        except OSError:
            pass
        finally:
            fake.unregister_socket(conn)

    def _feature_flags(self, conn: _WsConn, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not self.fake.config.feature_flags:
            return
        if message.get("type") == "feature_flags" and message.get("data", {}).get("supports_preview_metadata"):
            conn.supports_metadata = True
            conn.send_json({"type": "feature_flags", "data": _FEATURES})

    # -------------------------------------------------------------- routes
    def _get_system_stats(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        self._json(200, {"system": {"os": "posix", "comfyui_version": "0.33.0", "python_version": "3.11.7",
                                    "pytorch_version": "2.13.0+cpu", "argv": ["main.py", "--cpu"]},
                         "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0}]})

    def _get_features(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        self._json(200, _FEATURES)

    def _get_object_info(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        info = self.fake.object_info_view()
        parts = path.strip("/").split("/")
        if len(parts) > 1:
            name = "/".join(parts[1:])
            self._json(200, {name: info[name]} if name in info else {})
        else:
            self._json(200, info)

    def _get_models(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        parts = path.strip("/").split("/")
        known = ["checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                 "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
                 "hypernetworks", "photomaker", "classifiers"]
        known += [k for k in self.fake.config.models if k not in known]
        if len(parts) == 1:
            self._json(200, known)
        elif parts[1] in known:
            self._json(200, list(self.fake.config.models.get(parts[1], [])))
        else:
            self._reply(404, b"", "application/octet-stream")

    def _get_prompt(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        running, pending = self.fake.queue_snapshot()
        self._json(200, {"exec_info": {"queue_remaining": len(running) + len(pending)}})

    def _post_prompt(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError:
            self._server_error()
            return
        try:
            status, reply, job = self.fake.enqueue(payload)
        except Exception:  # a UI-format graph or other garbage: the real server answers 500
            self._server_error()
            return
        if fault is not None and fault.kind == "drop_after":
            self._drop()
            return
        if job is not None and self.fake.config.events_before_reply:
            job.started.wait(2.0)
            time.sleep(0.05)
        self._json(status, reply)

    def _get_queue(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        self._json(200, self.fake.queue_json())

    def _post_queue(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        payload = json.loads(body or b"{}")
        if payload.get("clear"):
            self.fake.clear_pending()
        if "delete" in payload:
            self.fake.delete_pending(list(payload["delete"]))
        self._reply(200)

    def _post_interrupt(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        payload = json.loads(body) if body else {}
        self.fake.interrupt(payload.get("prompt_id"))
        self._reply(200)

    def _get_history(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        parts = path.strip("/").split("/")
        with self.fake._lock:
            history = dict(self.fake.history)
        if len(parts) > 1:
            entry = history.get(parts[1])
            self._json(200, {parts[1]: entry} if entry else {})
            return
        items = list(history.items())
        try:
            if "max_items" in query:
                count = int(query["max_items"][0])
                offset = int(query["offset"][0]) if "offset" in query else max(0, len(items) - count)
                items = items[offset:offset + count]
        except ValueError:
            self._server_error()
            return
        self._json(200, dict(items))

    def _post_history(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        payload = json.loads(body or b"{}")
        with self.fake._lock:
            if payload.get("clear"):
                self.fake.history.clear()
            for prompt_id in payload.get("delete", []):
                self.fake.history.pop(prompt_id, None)
        self._reply(200)

    def _get_view(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        name = (query.get("filename") or [""])[0]
        subfolder = (query.get("subfolder") or [""])[0]
        folder_type = (query.get("type") or ["output"])[0]
        if not name:
            self._reply(404)
            return
        if folder_type not in FILE_TYPES:
            self._reply(400)
            return
        if ".." in name or name.startswith("/"):
            self._reply(400)
            return
        if ".." in subfolder.split("/") or subfolder.startswith("/"):
            self._reply(403)
            return
        name = name.rsplit("/", 1)[-1]
        with self.fake._lock:
            data = self.fake.files.get((folder_type, subfolder, name))
        if data is None:
            self._reply(404)
            return
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if fault is not None and fault.kind == "truncate":
            # The full length announced, half the body sent, then the connection dropped.
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._drop()
            return
        self._reply(200, data, CONTENT_TYPES.get(ext, "application/octet-stream"),
                    {"Content-Disposition": f'filename="{name}"', "X-Content-Type-Options": "nosniff",
                     "ETag": hashlib.sha256(data).hexdigest()[:16], "Accept-Ranges": "bytes"})

    def _post_upload(self, path: str, query: dict, body: bytes, fault: Fault | None) -> None:
        fields = _parse_multipart(self.headers.get("Content-Type", ""), body)
        if "image" not in fields or fields["image"][0] is None:
            self._reply(400)
            return
        filename, data = fields["image"]
        if not filename:
            self._server_error()
            return
        folder_type = (fields.get("type") or (None, b"input"))[1].decode() or "input"
        if folder_type not in FILE_TYPES:
            self._server_error()
            return
        subfolder = (fields.get("subfolder") or (None, b""))[1].decode()
        if ".." in subfolder.split("/") or subfolder.startswith("/"):
            self._reply(400)
            return
        overwrite = (fields.get("overwrite") or (None, b""))[1].decode().lower() in ("true", "1")
        self._json(200, self.fake.store_upload(filename.rsplit("/", 1)[-1], data, folder_type, subfolder, overwrite))


_FEATURES = {"supports_preview_metadata": True, "supports_model_type_tags": True, "max_upload_size": 104857600,
             "extension": {"manager": {"supports_v4": True}}, "node_replacements": True, "assets": False}


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename or None, bytes) for a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    boundary = b"--" + match.group(1).encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (filename.group(1) if filename else None, data)
    return fields


if __name__ == "__main__":
    # ``python tests/runner/fake_server.py``: a server in a process of its own (so that its threads
    # are not counted, nor share a GIL, with the client under test); prints its URL, stops when
    # stdin closes.
    import sys

    with FakeComfyServer() as running:
        print(running.url, flush=True)
        sys.stdin.read()
