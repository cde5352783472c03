"""Following one prompt: its websocket messages become typed events, and completion is noticed."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from runner.client.messages import IMAGE
from runner.events import Cached, Event, ImageOutput, NodeExecuted, NodeStarted, Preview, Progress, Started

# Output nodes known to send their images as websocket frames, for when /object_info was not read
# (the client learns every class's ``output_node`` flag from /object_info when it is).
WEBSOCKET_OUTPUT_CLASSES = frozenset({"SaveImageWebsocket"})


class RunTracker:
    """Turns one prompt's websocket messages into typed events and notices completion.

    A binary image frame belongs to the node it names (event 4) or else to the node executing when
    it arrives (event 1; frames and ``executing`` messages come in order on one socket). When that
    node's class is an output node (``output_classes``), the frame is an output image and is kept in
    :attr:`images`; otherwise it is a sampler preview, passed on as a :class:`Preview` event only.
    """

    def __init__(self, prompt_id: str, workflow: dict[str, Any],
                 output_classes: Iterable[str] = WEBSOCKET_OUTPUT_CLASSES) -> None:
        self.prompt_id = prompt_id
        self.output_classes = frozenset(output_classes)
        self.class_types = {nid: node.get("class_type") for nid, node in workflow.items() if isinstance(node, dict)}
        self.titles = {nid: (node.get("_meta") or {}).get("title") or node.get("class_type")
                       for nid, node in workflow.items() if isinstance(node, dict)}
        self.done: str | None = None  # the completion signal seen on the socket, if any
        self.ended = False  # the final ``executing{node: null}`` came: no more frames of this run
        self.poll_now = False  # a completion signal arrived: read history at once
        self.current_node: str | None = None
        self.started = False
        self.images: list[ImageOutput] = []
        self._image_counts: Counter[str] = Counter()

    def _node(self, node_id: Any) -> dict[str, Any]:
        nid = str(node_id)
        return {"node_id": nid, "class_type": self.class_types.get(nid), "title": self.titles.get(nid)}

    def feed(self, message: dict[str, Any]) -> list[Event]:
        kind, data, pid = message["type"], message["data"], self.prompt_id
        if kind == "execution_start":
            self.started = True
            return [Started(prompt_id=pid)]
        if kind == "execution_cached":
            return [Cached(prompt_id=pid, nodes=[str(n) for n in data.get("nodes", [])])]
        if kind == "executing":
            node = data.get("node")
            if node is None:
                if data.get("prompt_id") == pid:
                    self.done = self.done or "executing_null"
                    self.ended = True
                    self.poll_now = True
                return []
            if data.get("prompt_id") is None and not self.started:
                return []  # a reconnect frame about some other prompt of this client
            self.current_node = str(node)
            return [NodeStarted(prompt_id=pid, **self._node(node))]
        if kind == "progress":
            node = data.get("node") or self.current_node
            return [Progress(prompt_id=pid, value=data.get("value", 0), max=data.get("max", 0), **self._node(node))]
        if kind == "executed":
            return [NodeExecuted(prompt_id=pid, output=data.get("output") or {}, **self._node(data.get("node")))]
        if kind in ("execution_success", "execution_error", "execution_interrupted"):
            self.done = kind
            self.poll_now = True
            return []
        if kind == IMAGE and not self.done:
            return self._image(message)
        return []

    def _image(self, message: dict[str, Any]) -> list[Event]:
        data, pid = message["data"], self.prompt_id
        if message.get("prompt_id") != pid and not (self.started or self.current_node):
            return []  # an event 1 frame before our run began: it cannot be ours
        node = data.get("node") or self.current_node
        image = data["image"]
        if node is not None and self.class_types.get(node) in self.output_classes:
            index = self._image_counts[node]
            self._image_counts[node] += 1
            output = ImageOutput(prompt_id=pid, index=index, image_format=data["format"], size=len(image),
                                 **self._node(node))
            output.data = image
            self.images.append(output)
            return [output]
        preview = Preview(prompt_id=pid, node_id=node, image_format=data["format"], size=len(image))
        preview.data = image
        return [preview]
