"""Reading a workflow file and bringing it to API format (web-UI saves are converted with ``/object_info``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from runner.workflow.convert import ui_to_api
from runner.workflow.errors import WorkflowError

FORMAT_API = "api"
FORMAT_UI = "ui"


def load_workflow(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Read a workflow file (or take a dict as is) and return its JSON object; never modifies the file."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    except IsADirectoryError:
        raise WorkflowError(f"workflow path is a directory, not a file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read workflow file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"workflow file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise WorkflowError(f"workflow file {path} holds a JSON {type(data).__name__}, not a workflow object")
    return data


def detect_format(workflow: dict[str, Any]) -> str:
    """``"ui"`` for web-UI saves, ``"api"`` for API exports; raises for anything else."""
    if isinstance(workflow.get("nodes"), list):
        return FORMAT_UI
    if workflow and all(isinstance(node, dict) and "class_type" in node for node in workflow.values()):
        return FORMAT_API
    if not workflow:
        raise WorkflowError("workflow is empty: it has no nodes")
    raise WorkflowError(
        "not a ComfyUI workflow: expected API format (node id -> {class_type, inputs}) "
        "or a web-UI save (with 'nodes' and 'links')"
    )


def _unwrap(workflow: dict[str, Any]) -> dict[str, Any]:
    # What the browser posts is {"prompt": <API>, ...}; accept that too.
    inner = workflow.get("prompt")
    if isinstance(inner, dict) and "nodes" not in workflow and "class_type" not in workflow:
        return inner
    return workflow


def to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return ``(api_workflow, source_format)``; UI workflows are converted with ``object_info``."""
    workflow = _unwrap(workflow)
    kind = detect_format(workflow)
    if kind == FORMAT_UI:
        return ui_to_api(workflow, object_info), kind
    api = {str(node_id): node for node_id, node in workflow.items()}
    for node_id, node in api.items():
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"node {node_id}: 'inputs' must be an object")
        node.setdefault("inputs", {})
    return api, kind


def node_titles(api: dict[str, Any], object_info: dict[str, Any]) -> dict[str, str]:
    """Node id -> title (``_meta.title``, else the class's display name, else the class)."""
    titles = {}
    for node_id, node in api.items():
        title = (node.get("_meta") or {}).get("title")
        if not title:
            title = (object_info.get(node.get("class_type")) or {}).get("display_name") or node.get("class_type")
        titles[node_id] = str(title)
    return titles

