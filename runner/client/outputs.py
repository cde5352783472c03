"""Bring back every output a finished prompt lists in its history, plus a ``manifest.json``.

History lists outputs per node as ``{key: [items]}``: ``images`` (also animated images and videos,
marked by ``animated: [true]``), ``audio``, ``gifs`` (a popular video pack), ``text`` (strings),
and whatever custom nodes invent. Any item with a ``filename`` is a file fetched through ``/view``;
``text`` strings are written as ``.txt`` files; other values are recorded in the manifest only.
Images an output node sent as websocket frames (``SaveImageWebsocket``: stored nowhere on the
server, absent from history) come from ``RunResult.images`` and are saved with the rest.

Local names are deterministic: ``<node>-<kind>-<index>-<server filename>`` (``<node>-text-<index>.txt``
for text, ``<node>-image-<index>.<ext>`` for websocket images, numbered in the order they arrived), so
reruns and scripts can find files without reading the manifest. Files are streamed to a temporary name
beside the target and renamed when complete, hashing on the way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.client.actions import Download, Downloaded, Reply, Sleep, Unreachable, WriteFailed
from runner.client.endpoints import ServerCalls, Steps
from runner.client.results import RunResult
from runner.client.retry import RETRY_STATUSES
from runner.client.tracker import WEBSOCKET_OUTPUT_CLASSES
from runner.errors import OutputError
from runner.events import ImageOutput

VIDEO_EXTENSIONS = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"}
AUDIO_EXTENSIONS = {".flac", ".mp3", ".wav", ".ogg", ".opus", ".m4a"}
METADATA_KEYS = {"animated"}  # flags that describe other items rather than being outputs
MANIFEST_NAME = "manifest.json"
WEBSOCKET_KEY = "websocket"  # manifest ``key`` of images that came as websocket frames
IMAGE_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp"}


@dataclass
class OutputItem:
    """One output of one node: a server file (``filename`` set) or a text value (``text`` set)."""

    node_id: str
    key: str
    kind: str
    index: int
    filename: str | None = None
    subfolder: str = ""
    type: str = "output"
    text: str | None = None
    local_name: str = ""
    data: bytes | None = None  # the bytes of an image that came over the websocket

    def view_params(self) -> dict[str, str]:
        return {"filename": self.filename or "", "subfolder": self.subfolder, "type": self.type}


def _natural_key(node_id: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", node_id)]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def _kind(key: str, filename: str, animated: bool) -> str:
    ext = os.path.splitext(filename)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in AUDIO_EXTENSIONS or key == "audio":
        return "audio"
    if key == "images":
        return "animated" if animated else "image"
    if key == "gifs":
        return "gif"
    return _safe(key)


def list_outputs(outputs: dict[str, Any]) -> tuple[list[OutputItem], list[dict[str, Any]]]:
    """(items to save, other values to record) from a history ``outputs`` mapping, in a stable order."""
    items: list[OutputItem] = []
    others: list[dict[str, Any]] = []
    for node_id in sorted(outputs, key=_natural_key):
        node_outputs = outputs[node_id] or {}
        animated = bool(node_outputs.get("animated") and any(node_outputs.get("animated")))
        for key in sorted(node_outputs):
            values = node_outputs[key]
            if key in METADATA_KEYS:
                continue
            if not isinstance(values, list):
                others.append({"node_id": node_id, "key": key, "value": values})
                continue
            for index, value in enumerate(values):
                if isinstance(value, dict) and value.get("filename"):
                    filename = str(value["filename"])
                    kind = _kind(key, filename, animated)
                    items.append(OutputItem(node_id, key, kind, index, filename, str(value.get("subfolder") or ""),
                                            str(value.get("type") or "output"),
                                            local_name=f"{_safe(node_id)}-{kind}-{index:02d}-{_safe(os.path.basename(filename))}"))
                elif isinstance(value, str) and key == "text":
                    items.append(OutputItem(node_id, key, "text", index, text=value,
                                            local_name=f"{_safe(node_id)}-text-{index:02d}.txt"))
                else:
                    others.append({"node_id": node_id, "key": key, "index": index, "value": value})
    return items, others


def list_websocket_images(images: list[ImageOutput]) -> list[OutputItem]:
    """Items for the output images that came as websocket frames, by node then arrival order."""
    items = []
    for image in sorted(images, key=lambda i: (_natural_key(str(i.node_id)), i.index)):
        node_id = str(image.node_id)
        ext = IMAGE_EXTENSIONS.get(image.image_format, _safe(image.image_format))
        items.append(OutputItem(node_id, WEBSOCKET_KEY, "image", image.index, data=image.data,
                                local_name=f"{_safe(node_id)}-image-{image.index:02d}.{ext}"))
    return items


def missing_websocket_images(workflow: dict[str, Any], result: RunResult) -> list[str]:
    """One line per node that sends its images over the websocket but sent none we received.

    Those images are stored nowhere on the server, so a socket that was down while the node ran
    loses them for good; a successful run must not pass over that in silence.
    """
    if not result.ok:
        return []
    received = {image.node_id for image in result.images}
    return [f"node {node_id} ({node.get('class_type')}) sends its images over the websocket, but none arrived "
            "(was the websocket down?); the server does not store them: run the workflow again"
            for node_id, node in sorted(workflow.items(), key=lambda item: _natural_key(item[0]))
            if isinstance(node, dict) and node.get("class_type") in WEBSOCKET_OUTPUT_CLASSES and node_id not in received]


def download_steps(calls: ServerCalls, item: OutputItem, target: Path) -> Steps[tuple[int, str]]:
    """Stream one ``/view`` file to ``target`` (atomic); returns (size, sha256). Retries transient failures:
    no connection, 5xx / 429, a body that broke off mid-way."""
    attempts = calls.retry.retries + 1
    problem = ""
    for attempt in range(attempts):
        outcome = yield Download(item.view_params(), target, calls.timeout, calls.connect_timeout)
        if isinstance(outcome, Downloaded):
            return outcome.size, outcome.sha256
        if isinstance(outcome, WriteFailed):
            raise OutputError(f"cannot write {outcome.path}: {outcome.detail}")
        if isinstance(outcome, Reply):
            problem = f"GET /view answered {outcome.status_code} {outcome.reason}"
            if outcome.status_code not in RETRY_STATUSES:
                break
        elif isinstance(outcome, Unreachable):
            problem = str(calls.unreachable(outcome.detail))
        else:
            problem = outcome.detail
        if attempt + 1 < attempts:
            yield Sleep(calls.retry.delay(attempt))
    raise OutputError(f"could not download {item.filename!r} (node {item.node_id}): {problem}")


@dataclass
class Manifest:
    prompt_id: str
    server: str
    state: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    other_values: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    previews: list[dict[str, Any]] = field(default_factory=list)  # saved sampler previews (not outputs)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def collect_outputs(client: Any, result: RunResult, out_dir: str | Path, **options: Any) -> Manifest:
    """:meth:`runner.ComfyClient.download_outputs` as a function (options as :func:`output_steps`)."""
    return client.download_outputs(result, out_dir, **options)


def output_steps(
    calls: ServerCalls,
    result: RunResult,
    out_dir: str | Path,
    *,
    titles: dict[str, str] | None = None,
    class_types: dict[str, str] | None = None,
    overrides: list[Any] | None = None,
    previews: list[dict[str, Any]] | None = None,
) -> Steps[Manifest]:
    """Download every output of ``result`` into ``out_dir`` and write ``manifest.json`` there.

    ``previews`` (records of previews already saved, see :mod:`runner.previews`) are listed in the
    manifest apart from the outputs."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    workflow = ((result.history or {}).get("prompt") or [None, None, {}])[2] or {}
    titles = dict(titles or {})
    class_types = dict(class_types or {})
    for node_id, node in workflow.items() if isinstance(workflow, dict) else []:
        if isinstance(node, dict):
            class_types.setdefault(node_id, node.get("class_type"))
            titles.setdefault(node_id, (node.get("_meta") or {}).get("title") or node.get("class_type"))
    items, others = list_outputs(result.outputs)
    # Stable sort: websocket images join their node's place in the node order.
    items = sorted(items + list_websocket_images(result.images), key=lambda item: _natural_key(item.node_id))
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    for item in items:
        target = out_dir / item.local_name
        if item.text is not None or item.data is not None:
            data = item.data if item.data is not None else (item.text or "").encode("utf-8")
            _write_atomic(target, data)
            size, sha = len(data), hashlib.sha256(data).hexdigest()
        else:
            size, sha = yield from download_steps(calls, item, target)
        records.append({
            "node_id": item.node_id, "class_type": class_types.get(item.node_id), "title": titles.get(item.node_id),
            "key": item.key, "kind": item.kind, "index": item.index, "path": item.local_name,
            "filename": item.filename, "subfolder": item.subfolder if item.filename else None,
            "type": item.type if item.filename else None, "size": size, "sha256": sha,
        })
    timings = dict(result.timings)
    timings["download_s"] = round(time.monotonic() - started, 4)
    manifest = Manifest(result.prompt_id, calls.server, result.state.value, records, others, list(overrides or []),
                        timings, list(previews or []))
    _write_atomic(out_dir / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2).encode("utf-8"))
    return manifest


def _write_atomic(target: Path, data: bytes) -> None:
    partial = target.with_name(f".{target.name}.part")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
