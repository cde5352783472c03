"""Converting a UI-format workflow (what the web UI saves) into the API format ``POST /prompt`` takes.

The UI format stores widget values by position, links as separate records, and carries nodes
that exist only in the editor (reroutes, primitive nodes, notes) as well as muted/bypassed nodes
and subgraphs. The server's ``/object_info`` tells us the widget order of every class, which is
all that is needed to rebuild the API graph the way the web UI itself does before queueing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from runner.workflow.errors import WorkflowError
from runner.workflow.spec import (
    CONTROL_AFTER_GENERATE_VALUES,
    DYNAMIC_COMBO,
    InputSpec,
    class_inputs,
)

log = logging.getLogger(__name__)

MODE_MUTED = 2  # "never": the node and everything only it feeds is left out
MODE_BYPASSED = 4  # the node is skipped and its inputs are passed through to its outputs by type
# Editor-only nodes: they never reach the server.
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
# Ids the editor gives the pseudo nodes standing for a subgraph's inputs and outputs.
SUBGRAPH_INPUT_NODE = -10
SUBGRAPH_OUTPUT_NODE = -20
UPLOAD_BUTTON_VALUES = frozenset({"image", "video", "audio", "file"})


@dataclass
class _Link:
    origin: int
    origin_slot: int
    target: int
    target_slot: int
    type: str


@dataclass
class _Scope:
    """One graph level: the top-level graph, or one instance of a subgraph definition."""

    prefix: str  # "" at top level, "12:" inside subgraph node 12
    nodes: dict[int, dict[str, Any]]
    links: dict[int, _Link]
    definition: dict[str, Any] | None = None  # the subgraph definition for inner scopes
    parent: "_Scope | None" = None
    instance: dict[str, Any] | None = None  # the node in ``parent`` this scope expands
    children: dict[int, "_Scope"] = field(default_factory=dict)


def _parse_links(raw_links: Any) -> dict[int, _Link]:
    links: dict[int, _Link] = {}
    for raw in raw_links or ():
        if isinstance(raw, dict):  # subgraph definitions (and schema v1) store links as objects
            link = _Link(raw["origin_id"], raw["origin_slot"], raw["target_id"], raw["target_slot"], raw.get("type", "*"))
            links[int(raw["id"])] = link
        else:
            link_id, origin, origin_slot, target, target_slot = raw[:5]
            kind = raw[5] if len(raw) > 5 else "*"
            links[int(link_id)] = _Link(origin, origin_slot, target, target_slot, kind)
    return links


def _node_label(scope: _Scope, node: dict[str, Any]) -> str:
    title = node.get("title")
    label = f"node {scope.prefix}{node.get('id')} ({node.get('type')}"
    return label + (f" '{title}')" if title else ")")


class UiConverter:
    """Turns one UI-format workflow into API format using the server's ``/object_info``."""

    def __init__(self, ui: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.ui = ui
        self.object_info = object_info
        definitions = (ui.get("definitions") or {}).get("subgraphs") or []
        self.subgraphs: dict[str, dict[str, Any]] = {d["id"]: d for d in definitions if "id" in d}
        self.group_nodes = set(((ui.get("extra") or {}).get("groupNodes") or {}).keys())
        self.problems: list[str] = []
        self.api: dict[str, dict[str, Any]] = {}

    # ----- public -----

    def convert(self) -> dict[str, dict[str, Any]]:
        """The API-format workflow; raises :class:`WorkflowError` listing every unsupported construct."""
        nodes = self.ui.get("nodes")
        if not isinstance(nodes, list):
            raise WorkflowError("UI workflow has no 'nodes' list; re-export it from the web UI")
        top = _Scope(prefix="", nodes=self._index_nodes(nodes), links=_parse_links(self.ui.get("links")))
        self._emit_scope(top, depth=0)
        if self.problems:
            raise WorkflowError(self.problems)
        if not self.api:
            raise WorkflowError("UI workflow has no active nodes to run (all muted, bypassed or editor-only)")
        return self.api

    # ----- graph walking -----

    def _index_nodes(self, nodes: list[Any]) -> dict[int, dict[str, Any]]:
        indexed: dict[int, dict[str, Any]] = {}
        for node in nodes:
            if isinstance(node, dict) and "id" in node:
                indexed[node["id"]] = node
        return indexed

    def _child_scope(self, scope: _Scope, node: dict[str, Any]) -> _Scope:
        node_id = node["id"]
        if node_id not in scope.children:
            definition = self.subgraphs[node["type"]]
            scope.children[node_id] = _Scope(
                prefix=f"{scope.prefix}{node_id}:",
                nodes=self._index_nodes(definition.get("nodes") or []),
                links=_parse_links(definition.get("links")),
                definition=definition,
                parent=scope,
                instance=node,
            )
        return scope.children[node_id]

    def _emit_scope(self, scope: _Scope, depth: int) -> None:
        if depth > 32:
            self.problems.append(f"subgraphs nested more than 32 deep at {scope.prefix.rstrip(':')}; cannot convert")
            return
        for node in scope.nodes.values():
            mode = node.get("mode", 0) or 0
            kind = node.get("type")
            if mode in (MODE_MUTED, MODE_BYPASSED) or kind in NOTE_TYPES or kind in (REROUTE, PRIMITIVE):
                continue
            if kind in self.subgraphs:
                self._emit_scope(self._child_scope(scope, node), depth + 1)
                continue
            if kind in self.group_nodes or (isinstance(kind, str) and kind.startswith("workflow>")):
                self.problems.append(
                    f"{_node_label(scope, node)} is a legacy group node, which only the web UI can expand; "
                    "convert it to a subgraph or use 'Export (API)'"
                )
                continue
            info = self.object_info.get(kind) if isinstance(kind, str) else None
            if info is None:
                self.problems.append(
                    f"{_node_label(scope, node)}: class '{kind}' is not installed on the server, "
                    "so its widgets cannot be read; install it or use 'Export (API)'"
                )
                continue
            self._emit_node(scope, node, info)

    def _emit_node(self, scope: _Scope, node: dict[str, Any], info: dict[str, Any]) -> None:
        inputs = self._widget_inputs(scope, node, class_inputs(info))
        for slot in node.get("inputs") or ():
            link_id = slot.get("link")
            if link_id is None:
                continue
            resolved = self._resolve_link(scope, link_id, f"{_node_label(scope, node)} input '{slot.get('name')}'")
            if resolved is None:
                continue  # fed by a muted node or an unconnected pass-through: the input stays unset
            inputs[slot["name"]] = resolved
        title = node.get("title") or info.get("display_name") or node["type"]
        self.api[f"{scope.prefix}{node['id']}"] = {
            "inputs": inputs,
            "class_type": node["type"],
            "_meta": {"title": title},
        }

    def _widget_inputs(self, scope: _Scope, node: dict[str, Any], specs: list[InputSpec]) -> dict[str, Any]:
        """Map the node's positional ``widgets_values`` onto the class's widget inputs."""
        raw_values = node.get("widgets_values")
        named: dict[str, Any] = dict(node.get("widgets_values_named") or {})
        if isinstance(raw_values, dict):  # some savers store widgets by name already
            named.update(raw_values)
            raw_values = []
        values = list(raw_values or [])
        state = {"pos": 0}
        result: dict[str, Any] = {}
        missing: list[str] = []

        def take(spec: InputSpec) -> None:
            pos = state["pos"]
            have = pos < len(values)
            value = values[pos] if have else None
            state["pos"] = pos + (1 if have else 0)
            if spec.name in named:
                value, have = named[spec.name], True
            if not have:
                # A file saved before an optional input existed: the editor gives it its default,
                # and so does the server when the prompt leaves it out.
                if spec.required:
                    missing.append(spec.name)
                return
            if isinstance(value, list):  # a literal list must be wrapped, or the server reads a link
                value = {"__value__": value}
            result[spec.name] = value
            nxt = state["pos"]
            if spec.has_control_widget and nxt < len(values) and values[nxt] in CONTROL_AFTER_GENERATE_VALUES:
                state["pos"] += 1  # the "control after generate" widget is saved but never sent
            elif spec.upload_kind and nxt < len(values) and values[nxt] in UPLOAD_BUTTON_VALUES:
                state["pos"] += 1  # the upload button also keeps a slot
            if spec.type == DYNAMIC_COMBO:
                for sub in spec.sub_inputs.get(value, ()):
                    if sub.is_widget:
                        take(sub)

        for spec in specs:
            if spec.is_widget:
                take(spec)
        if missing:
            self.problems.append(
                f"{_node_label(scope, node)}: widgets_values has no value for {', '.join(missing)} "
                "(the saved node does not match the server's class; update the node or use 'Export (API)')"
            )
        elif state["pos"] < len(values):
            log.debug("%s: %d extra widget values ignored", _node_label(scope, node), len(values) - state["pos"])
        return result

    def _resolve_link(self, scope: _Scope, link_id: int, where: str, hops: int = 0) -> Any:
        """Follow a link upstream through reroutes, bypasses and subgraph borders.

        Returns ``[node_id, slot]`` for a real node, a literal for a primitive node, or None when
        nothing real feeds the input.
        """
        if hops > 256:
            self.problems.append(f"{where}: link chain too long or cyclic (link {link_id})")
            return None
        link = scope.links.get(int(link_id))
        if link is None:
            self.problems.append(f"{where}: refers to link {link_id}, which the file does not define")
            return None
        if link.origin == SUBGRAPH_INPUT_NODE:
            return self._resolve_subgraph_input(scope, link.origin_slot, where, hops)
        origin = scope.nodes.get(link.origin)
        if origin is None:
            self.problems.append(f"{where}: link {link_id} comes from node {link.origin}, which does not exist")
            return None
        kind = origin.get("type")
        mode = origin.get("mode", 0) or 0
        if mode == MODE_MUTED or kind in NOTE_TYPES:
            return None
        if kind == PRIMITIVE:
            saved = origin.get("widgets_values") or []
            return saved[0] if saved else None
        if kind == REROUTE:
            feed = (origin.get("inputs") or [{}])[0].get("link")
            return None if feed is None else self._resolve_link(scope, feed, where, hops + 1)
        if mode == MODE_BYPASSED:
            feed = self._bypass_feed(origin, link.origin_slot)
            return None if feed is None else self._resolve_link(scope, feed, where, hops + 1)
        if kind in self.subgraphs:
            inner = self._child_scope(scope, origin)
            for inner_id, inner_link in inner.links.items():
                if inner_link.target == SUBGRAPH_OUTPUT_NODE and inner_link.target_slot == link.origin_slot:
                    return self._resolve_link(inner, inner_id, where, hops + 1)
            return None
        return [f"{scope.prefix}{link.origin}", link.origin_slot]

    def _resolve_subgraph_input(self, scope: _Scope, slot: int, where: str, hops: int) -> Any:
        definition, instance, parent = scope.definition or {}, scope.instance or {}, scope.parent
        declared = definition.get("inputs") or []
        if parent is None or slot >= len(declared):
            self.problems.append(f"{where}: uses subgraph input {slot}, which the subgraph does not declare")
            return None
        name = declared[slot].get("name")
        outer_slots = instance.get("inputs") or []
        outer = next((s for s in outer_slots if s.get("name") == name), None)
        if outer is None and slot < len(outer_slots):
            outer = outer_slots[slot]
        if outer is not None and outer.get("link") is not None:
            return self._resolve_link(parent, outer["link"], where, hops + 1)
        if outer is not None and outer.get("widget"):
            # A promoted widget: its value sits in the instance's widgets_values, in widget order.
            widget_names = [s.get("name") for s in outer_slots if s.get("widget")]
            saved = instance.get("widgets_values") or []
            index = widget_names.index(name)
            if index < len(saved):
                return saved[index]
        return None

    @staticmethod
    def _bypass_feed(node: dict[str, Any], out_slot: int) -> int | None:
        """The link a bypassed node passes through for output ``out_slot``: same slot first, then by type."""
        outputs = node.get("outputs") or []
        inputs = node.get("inputs") or []
        wanted = outputs[out_slot].get("type") if out_slot < len(outputs) else None
        if out_slot < len(inputs) and inputs[out_slot].get("type") == wanted and inputs[out_slot].get("link") is not None:
            return inputs[out_slot]["link"]
        for slot in inputs:
            if slot.get("type") == wanted and slot.get("link") is not None:
                return slot["link"]
        return None


def ui_to_api(ui: dict[str, Any], object_info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow to API format (see :class:`UiConverter`)."""
    return UiConverter(ui, object_info).convert()
