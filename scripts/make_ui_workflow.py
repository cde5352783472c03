"""Write the UI-format (web editor) form of an API-format workflow, for the shipped templates.

    python scripts/make_ui_workflow.py API.json OBJECT_INFO.json OUT.ui.json

``OBJECT_INFO.json`` is a server's ``/object_info`` (or ``{"object_info": {...}}``) holding every
class the workflow uses: the editor stores widget values by position, in the order of each
class's inputs, so the order must come from the server. Linked widget inputs keep a value slot
(the editor saves one); a seed keeps its "control after generate" slot and an upload input its
button's slot. Nodes are laid out left to right by how far they are from the inputs. The
comfy-run converter reads the result back to the same API form (tests check that).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

from runner.workflow.spec import DYNAMIC_COMBO, InputSpec, class_inputs

COLUMN, ROW = 360, 280


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _depths(api: dict[str, Any]) -> dict[str, int]:
    depths: dict[str, int] = {}

    def depth(node_id: str) -> int:
        if node_id not in depths:
            links = [v for v in api[node_id]["inputs"].values() if _is_link(v)]
            depths[node_id] = 1 + max((depth(str(v[0])) for v in links), default=-1)
        return depths[node_id]

    for node_id in api:
        depth(node_id)
    return depths


def _widget_values(spec: InputSpec, inputs: dict[str, Any], values: list[Any]) -> None:
    value = inputs.get(spec.name, spec.options.get("default"))
    if _is_link(value):
        value = spec.options.get("default", "")
    values.append(value)
    if spec.has_control_widget:
        values.append("fixed")
    elif spec.upload_kind:
        values.append(spec.upload_kind)
    if spec.type == DYNAMIC_COMBO:
        for sub in spec.sub_inputs.get(value, ()):
            if sub.is_widget:
                _widget_values(sub, inputs, values)


def to_ui(api: dict[str, Any], object_info: dict[str, Any], name: str) -> dict[str, Any]:
    ids = {node_id: int(node_id) for node_id in api}
    links: list[list[Any]] = []
    outgoing: dict[tuple[int, int], list[int]] = {}
    incoming: dict[tuple[int, str], int] = {}
    for node_id in sorted(api, key=int):
        info = object_info[api[node_id]["class_type"]]
        specs = {spec.name: spec for spec in class_inputs(info)}
        for input_name, value in api[node_id]["inputs"].items():
            if _is_link(value):
                source = ids[str(value[0])]
                kind = object_info[api[str(value[0])]["class_type"]]["output"][value[1]]
                link_id = len(links) + 1
                links.append([link_id, source, value[1], ids[node_id], None, kind])
                outgoing.setdefault((source, value[1]), []).append(link_id)
                incoming[(ids[node_id], input_name)] = link_id
                if input_name not in specs:
                    raise SystemExit(f"node {node_id}: {input_name} is not an input of its class")
    depths = _depths(api)
    rows: dict[int, int] = {}
    nodes = []
    for order, node_id in enumerate(sorted(api, key=lambda n: (depths[n], int(n)))):
        node = api[node_id]
        info = object_info[node["class_type"]]
        number = ids[node_id]
        slots, values = [], []
        for spec in class_inputs(info):
            link = incoming.get((number, spec.name))
            if spec.is_widget:
                _widget_values(spec, node["inputs"], values)
                if link is not None:
                    slots.append({"name": spec.name, "type": spec.type, "widget": {"name": spec.name},
                                  "link": link})
            else:
                slots.append({"name": spec.name, "type": spec.type, "link": link})
        for slot_index, slot in enumerate(slots):
            if slot["link"] is not None:
                links[slot["link"] - 1][4] = slot_index
        outputs = [{"name": info["output_name"][i], "type": kind, "links": outgoing.get((number, i)),
                    "slot_index": i} for i, kind in enumerate(info["output"])]
        row = rows.get(depths[node_id], 0)
        rows[depths[node_id]] = row + 1
        nodes.append({
            "id": number, "type": node["class_type"],
            "pos": [100 + COLUMN * depths[node_id], 100 + ROW * row], "size": [320, 220],
            "flags": {}, "order": order, "mode": 0, "inputs": slots, "outputs": outputs,
            "title": node.get("_meta", {}).get("title", info.get("display_name", node["class_type"])),
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values,
        })
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"colorize-video/{name}")), "revision": 0,
        "last_node_id": max(ids.values()), "last_link_id": len(links), "nodes": nodes, "links": links,
        "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }


def main(argv: list[str]) -> None:
    api_path, info_path, out_path = (Path(a) for a in argv)
    info = json.loads(info_path.read_text())
    info = info.get("object_info", info)
    ui = to_ui(json.loads(api_path.read_text()), info, out_path.name.split(".")[0])
    out_path.write_text(json.dumps(ui, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
