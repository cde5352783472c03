"""Following one prompt: its websocket messages become typed events, and completion is noticed."""

from __future__ import annotations

from typing import Any

from runner.events import Cached, Event, NodeExecuted, NodeStarted, Preview, Progress, Started


class RunTracker:
    """Turns one prompt's websocket messages into typed events and notices completion."""

    def __init__(self, prompt_id: str, workflow: dict[str, Any]) -> None:
        self.prompt_id = prompt_id
        self.class_types = {nid: node.get("class_type") for nid, node in workflow.items() if isinstance(node, dict)}
        self.titles = {nid: (node.get("_meta") or {}).get("title") or node.get("class_type")
                       for nid, node in workflow.items() if isinstance(node, dict)}
        self.done: str | None = None  # the completion signal seen on the socket, if any
        self.poll_now = False  # a completion signal arrived: read history at once
        self.current_node: str | None = None
        self.started = False

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
        if kind == "_preview" and self.started and not self.done:
            preview = Preview(prompt_id=pid, node_id=data.get("node") or self.current_node,
                              image_format=data["format"], size=len(data["image"]))
            preview.data = data["image"]
            return [preview]
        return []
