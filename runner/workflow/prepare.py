"""Applying ``--set``/``--input`` overrides to a loaded workflow and checking it before anything is queued.

:func:`prepare_workflow` returns a :class:`PreparedWorkflow` (an API-format graph plus a record of
what was changed) or raises :class:`WorkflowError` listing every problem found, one per line.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from runner.workflow.errors import WorkflowError
from runner.workflow.load import FORMAT_API, load_workflow, node_titles, to_api
from runner.workflow.packs import missing_packs, pack_of
from runner.workflow.packs import model_folder as pack_model_folder
from runner.workflow.spec import COMBO, DYNAMIC_COMBO, InputSpec, all_input_specs, check_value

log = logging.getLogger(__name__)

# Choice inputs that name a model file, and the /models folder that lists such files.
MODEL_INPUT_FOLDERS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "control_net_name": "controlnet",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "model_name": "upscale_models",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "hypernetwork_name": "hypernetworks",
    "config_name": "configs",
}
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
#: Files of a local folder given to ``--input`` that are uploaded (images, as /upload/image takes).
FOLDER_UPLOAD_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


@dataclass
class PreparedWorkflow:
    """An API-format workflow ready to queue, and what was done to it."""

    api: dict[str, Any]
    overrides: list[dict[str, Any]] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)
    class_types: dict[str, str] = field(default_factory=dict)
    source_format: str = FORMAT_API


# ----- targets and assignments -----


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON where it parses (numbers, true/false, lists...), else the string itself."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def parse_assignment(text: str, option: str = "--set") -> tuple[str, str]:
    """Split ``TARGET.INPUT=VALUE`` into ``("TARGET.INPUT", "VALUE")``."""
    left, sep, right = text.partition("=")
    if not sep or "." not in left or not left.strip("."):
        raise WorkflowError(f"{option} {text!r}: expected TARGET.INPUT=VALUE (e.g. {option} KSampler.seed=42)")
    return left, right


def _describe_node(node_id: str, api: dict[str, Any], titles: dict[str, str]) -> str:
    return f"node {node_id} ({api[node_id].get('class_type')} '{titles.get(node_id, '')}')"


def resolve_target(target: str, api: dict[str, Any], titles: dict[str, str]) -> list[str]:
    """Node ids matching a target: an id, else a title, else a class name (may return several)."""
    if target in api:
        return [target]
    by_title = [nid for nid, title in titles.items() if title == target]
    if by_title:
        return by_title
    by_class = [nid for nid, node in api.items() if node.get("class_type") == target]
    if by_class:
        return by_class
    folded = target.casefold()
    return [nid for nid, title in titles.items() if title.casefold() == folded]


def _split_target(left: str, api: dict[str, Any], titles: dict[str, str]) -> tuple[list[str], str, str]:
    """Find the dot that separates TARGET from INPUT (titles and input names may contain dots)."""
    candidates = []
    for index, char in enumerate(left):
        if char == ".":
            target, input_name = left[:index], left[index + 1 :]
            if target and input_name:
                matches = resolve_target(target, api, titles)
                if matches:
                    candidates.append((matches, target, input_name))
    # Prefer a split whose input exists on the node(s) it names.
    with_input = [c for c in candidates if all(c[2] in api[n].get("inputs", {}) for n in c[0])]
    chosen = (with_input or candidates or [([], left.rsplit(".", 1)[0], left.rsplit(".", 1)[-1])])[0]
    return chosen


@dataclass
class _Assignment:
    option: str  # "--set" or "--input"
    text: str
    node_id: str = ""
    input_name: str = ""
    value: Any = None
    upload_path: Path | None = None
    target: str = ""  # as the user wrote it ('*.seed' for each node a wildcard reached)


WILDCARD = "*"


def _has_input(node: dict[str, Any], input_name: str, object_info: dict[str, Any]) -> bool:
    """Whether a wildcard reaches this node: it holds ``input_name`` as a value (not a link), or its
    class has such a widget that the graph leaves at its default."""
    inputs = node.get("inputs") or {}
    if input_name in inputs:
        return not isinstance(inputs[input_name], list)
    info = object_info.get(node.get("class_type"))
    spec = all_input_specs(info, inputs).get(input_name) if info else None
    return spec is not None and spec.is_widget


def _expand(option: str, texts: list[str], api: dict[str, Any], object_info: dict[str, Any]
            ) -> tuple[list[_Assignment], list[str]]:
    """One assignment per text; ``*.INPUT=VALUE`` becomes one per node that has INPUT (error if none)."""
    assignments: list[_Assignment] = []
    problems: list[str] = []
    for text in texts:
        left, _, raw = text.partition("=")
        target, dot, input_name = left.partition(".")
        if target != WILDCARD or not dot or not input_name:
            assignments.append(_Assignment(option, text, target=left))
            continue
        nodes = [nid for nid, node in api.items() if _has_input(node, input_name, object_info)]
        if not nodes:
            known = sorted({name for node in api.values() for name in (node.get("inputs") or {})})
            close = difflib.get_close_matches(input_name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{option} {left}: no node has an input '{input_name}'{hint}")
        assignments += [_Assignment(option, f"{nid}.{input_name}={raw}", target=left) for nid in nodes]
    return assignments, problems


def _input_spec(node_id: str, input_name: str, api: dict[str, Any], object_info: dict[str, Any]) -> InputSpec | None:
    info = object_info.get(api[node_id].get("class_type"))
    if info is None:
        return None
    return all_input_specs(info, api[node_id].get("inputs")).get(input_name) or all_input_specs(info).get(input_name)


def _check_assignment(
    item: _Assignment, api: dict[str, Any], titles: dict[str, str], object_info: dict[str, Any]
) -> list[str]:
    """Resolve and validate one assignment; returns its problems (empty when it is fine)."""
    try:
        left, raw = parse_assignment(item.text, item.option)
    except WorkflowError as exc:
        return exc.problems
    where = f"{item.option} {left}"
    matches, target, input_name = _split_target(left, api, titles)
    if not matches:
        return [f"{where}: no node has id, title or class '{target}'"]
    if len(matches) > 1:
        listed = ", ".join(_describe_node(n, api, titles) for n in matches)
        return [f"{where}: '{target}' matches {len(matches)} nodes ({listed}); use a node id"]
    node_id = matches[0]
    class_type = api[node_id].get("class_type")
    item.node_id, item.input_name = node_id, input_name
    info = object_info.get(class_type)
    if info is None:
        return [f"{where}: class '{class_type}' of node {node_id} is not on the server, cannot check the input"]
    spec = _input_spec(node_id, input_name, api, object_info)
    if spec is None:
        known = sorted(all_input_specs(info, api[node_id].get("inputs")))
        close = difflib.get_close_matches(input_name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; its inputs: {', '.join(known)}"
        return [f"{where}: {_describe_node(node_id, api, titles)} has no input '{input_name}'{hint}"]
    if item.option == "--input":
        path = Path(raw).expanduser()
        if path.is_dir():
            if not spec.is_widget or spec.type != "STRING":
                return [f"{where}: input '{input_name}' does not take a folder name ({spec.type})"]
            if not folder_files(path):
                return [f"{where}: local folder {raw} holds no images to upload"]
            item.upload_path = path
            return []
        if not path.is_file():
            return [f"{where}: local file not found: {raw}"]
        if not spec.is_widget or spec.type not in (COMBO, "STRING"):
            return [f"{where}: input '{input_name}' does not take a file name ({spec.type})"]
        item.upload_path = path
        return []
    value = parse_value(raw)
    if spec.upload_kind and isinstance(value, str) and Path(value).expanduser().is_file():
        item.upload_path = Path(value).expanduser()  # a local file given to an upload input: send it
        return []
    if not spec.is_widget:
        return [f"{where}: input '{input_name}' takes a link of type {spec.type}, not a value"]
    if spec.type == COMBO and isinstance(value, str) and (
        spec.upload_kind or _model_folder(input_name, spec, value) is not None
    ):
        # Files (inputs, models) may exist beyond the listing; the preflight checks them.
        item.value = value
        return []
    coerced, problem = check_value(spec, value)
    if problem:
        return [f"{where}: {problem}"]
    item.value = coerced
    return []


# ----- folders -----


def folder_files(folder: Path) -> list[Path]:
    """The images of a local folder that ``--input NODE.INPUT=DIR`` uploads (not hidden, sorted)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FOLDER_UPLOAD_SUFFIXES)


def upload_folder(folder: Path, upload: Callable[..., str]) -> str:
    """Upload a folder's images into one input subfolder; returns the subfolder's name.

    The subfolder is named after the folder and a digest of its files' names and bytes, so a
    rerun with the same files reuses it and other contents never mix with it; file names are
    kept (nodes that read a folder go by them), which the digest makes safe.
    """
    files = folder_files(folder)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    name = f"{folder.resolve().name or 'folder'}-{digest.hexdigest()[:12]}"
    for path in files:
        stored = upload(path, subfolder=name)
        if stored != f"{name}/{path.name}":
            raise WorkflowError(f"--input {folder}: the server stored {path.name} as {stored}; "
                                "the folder's file names must be kept, upload it again")
    return name


# ----- preflight -----


def _model_folder(input_name: str, spec: InputSpec, value: Any) -> str | None:
    if input_name in MODEL_INPUT_FOLDERS:
        return MODEL_INPUT_FOLDERS[input_name]
    if isinstance(value, str) and value.lower().endswith(MODEL_FILE_SUFFIXES):
        return ""  # a model file, folder unknown
    return None


def preflight(
    api: dict[str, Any],
    object_info: dict[str, Any],
    titles: dict[str, str] | None = None,
    models: Callable[[str], list[str]] | None = None,
    skip: set[tuple[str, str]] | None = None,
    server: str | None = None,
) -> list[str]:
    """Problems that would make the server refuse or fail the prompt: missing classes, models, links.

    ``models(folder)`` lists a ``/models/{folder}``; it is asked only when ``/object_info``'s
    choice list lacks a file (the listing may be older than the server's disk).
    """
    titles = titles or node_titles(api, object_info)
    skip = skip or set()
    problems: list[str] = []
    listings: dict[str, list[str]] = {}
    absent_packs = missing_packs(api, object_info)
    problems += [pack.missing_message(server, object_info, api) for pack in absent_packs]
    for node_id, node in api.items():
        class_type = node.get("class_type")
        info = object_info.get(class_type)
        if info is None:
            if pack_of(str(class_type)) not in absent_packs:  # a known pack is named once, above
                problems.append(f"node {node_id} ('{titles.get(node_id, class_type)}'): class '{class_type}' is not installed on the server")
            continue
        specs = all_input_specs(info, node.get("inputs"))
        for input_name, value in (node.get("inputs") or {}).items():
            if isinstance(value, list):
                if len(value) == 2 and str(value[0]) not in api:
                    problems.append(f"node {node_id} input '{input_name}' is linked to node {value[0]}, which is not in the workflow")
                continue
            spec = specs.get(input_name)
            if spec is None or spec.type not in (COMBO, DYNAMIC_COMBO) or (node_id, input_name) in skip:
                continue
            if value in (spec.choices or ()):
                continue
            folder = pack_model_folder(str(class_type), input_name) or _model_folder(input_name, spec, value)
            label = f"node {node_id} ({class_type}) input '{input_name}'"
            if folder is not None:
                if folder and models is not None:
                    if folder not in listings:
                        try:
                            listings[folder] = list(models(folder))
                        except Exception as exc:  # noqa: BLE001 - listing is advisory
                            log.debug("cannot list models/%s: %s", folder, exc)
                            listings[folder] = []
                    if value in listings[folder]:
                        continue
                where = f"models/{folder}" if folder else "the server"
                problems.append(f"{label}: model file '{value}' is missing on {where}")
            elif spec.upload_kind:
                if isinstance(value, str) and "/" in value:
                    continue  # files in input subfolders are not listed; the server checks them
                problems.append(f"{label}: input file '{value}' is not on the server (upload it with --input)")
            else:
                problems.append(f"{label}: {value!r} is not {spec.describe()}")
    return problems


# ----- the seam -----


def prepare_workflow(
    path_or_dict: str | Path | dict[str, Any],
    object_info: dict[str, Any],
    sets: list[str],
    inputs: list[str],
    upload: Callable[..., str],
    models: Callable[[str], list[str]] | None = None,
    server: str | None = None,
) -> PreparedWorkflow:
    """Load, convert, override, upload and preflight a workflow; raises :class:`WorkflowError`.

    Every override is checked before any file is uploaded, and the preflight runs after the
    overrides are applied, so all problems come back in one error and nothing is queued.
    ``upload(path)`` returns the server's name for a file; a folder given to ``--input`` is
    uploaded file by file with ``upload(path, subfolder=NAME)`` (:func:`upload_folder`).
    """
    api, source_format = to_api(load_workflow(path_or_dict), object_info)
    absent_packs = missing_packs(api, object_info)
    if absent_packs:  # the one thing to fix first; per-input checks against absent classes are noise
        raise WorkflowError([pack.missing_message(server, object_info, api) for pack in absent_packs])
    titles = node_titles(api, object_info)
    set_items, problems = _expand("--set", list(sets), api, object_info)
    input_items, input_problems = _expand("--input", list(inputs), api, object_info)
    assignments = set_items + input_items
    problems += input_problems
    records: list[dict[str, Any]] = []
    skip: set[tuple[str, str]] = set()
    for item in assignments:
        item_problems = _check_assignment(item, api, titles, object_info)
        problems += item_problems
        if not item.node_id:
            continue
        if item_problems or item.upload_path is not None:
            skip.add((item.node_id, item.input_name))  # reported already, or a fresh upload
        node = api[item.node_id]
        records.append(
            {
                "option": item.option,
                "target": item.target or item.text.partition("=")[0],
                "node": item.node_id,
                "class_type": node.get("class_type"),
                "title": titles.get(item.node_id),
                "input": item.input_name,
                "previous": node["inputs"].get(item.input_name),
            }
        )
        if not item_problems and item.upload_path is None:
            # Applied now so the preflight sees the final graph (e.g. an overridden checkpoint).
            node["inputs"][item.input_name] = item.value
    problems += preflight(api, object_info, titles, models, skip=skip, server=server)
    if problems:
        raise WorkflowError(problems)

    # Uploads only once everything else is known to be fine: nothing is sent for a doomed run.
    for item, record in zip(assignments, records):
        if item.upload_path is not None:
            item.value = (upload_folder(item.upload_path, upload) if item.upload_path.is_dir()
                          else upload(item.upload_path))
            record["uploaded_from"] = str(item.upload_path)
            api[item.node_id]["inputs"][item.input_name] = item.value
        record["value"] = item.value
    class_types = {node_id: str(node.get("class_type")) for node_id, node in api.items()}
    return PreparedWorkflow(api, records, titles, class_types, source_format)

