"""The catalogue of ready-made workflows (``runner/workflows/registry.json``) and their typed parameters.

Each entry names an API-format template file and declares parameters (type, limits, default,
description) mapped onto node inputs. ``comfy-run run ID --param name=value`` turns parameters into
ordinary ``--set``/``--input`` overrides, so the same validation against ``/object_info`` applies.
"""

from __future__ import annotations

import difflib
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from runner.workflow import parse_value
from runner.workflow.errors import WorkflowError

REGISTRY_DIR = Path(__file__).parent / "workflows"
REGISTRY_FILE = REGISTRY_DIR / "registry.json"
PARAMETER_TYPES = frozenset({"int", "float", "string", "bool", "choice", "model", "image", "folder"})
#: Parameter types whose value may be a local path that is uploaded (a file, or a folder's images).
UPLOAD_TYPES = {"image": Path.is_file, "folder": Path.is_dir}
# Parameters whose value names a file or folder: a model on the server, or input files (uploaded when local).
FILE_TYPES = ("model", "image", "folder")
TEXT_TYPES = FILE_TYPES + ("string",)
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_CATEGORY = "other"
_SCHEMA_TYPES = {"int": "integer", "float": "number", "bool": "boolean"}


def _same_json(value: Any, choice: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0`` (as JSON Schema's ``enum`` compares)."""
    if isinstance(value, bool) or isinstance(choice, bool):
        return isinstance(value, bool) and isinstance(choice, bool) and value == choice
    return value == choice


@dataclass(frozen=True)
class Target:
    """One node input a parameter writes to."""

    node: str
    input: str


@dataclass(frozen=True)
class Parameter:
    """A typed, documented knob of a registry workflow."""

    name: str
    type: str
    description: str
    targets: tuple[Target, ...]
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    folder: str | None = None  # for "model": the /models folder that holds the file

    def coerce(self, raw: str) -> tuple[Any, str | None]:
        """Parse a ``--param`` value; returns ``(value, problem or None)``."""
        value = parse_value(raw)
        if self.type in TEXT_TYPES and not isinstance(value, str):
            value = raw  # text stays text: '--param prompt=42' is the prompt "42"
        elif self.type == "choice" and not any(_same_json(value, choice) for choice in self.choices_or_empty):
            value = raw  # a choice named like a number or true: '--param mode=1'
        return self.check(value)

    @property
    def choices_or_empty(self) -> tuple[Any, ...]:
        return self.choices or ()

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Check a JSON value (as a web form sends it); returns ``(value, problem or None)``.

        The value's JSON type must fit (a number for ``int``/``float``, text for ``string``,
        ``model`` and ``image``), as the parameter's JSON Schema (:func:`parameter_schema`) says.
        """
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        if self.type in TEXT_TYPES:
            return (value, None) if isinstance(value, str) else (value, f"{shown} is not text")
        if self.type == "bool":
            return (value, None) if isinstance(value, bool) else (value, f"{shown} is not true or false")
        if self.type == "choice":
            if any(_same_json(value, choice) for choice in self.choices_or_empty):
                return value, None
            return value, f"{shown} is not one of {', '.join(map(str, self.choices_or_empty))}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, f"{shown} is not a number"
        if self.type == "int":
            if isinstance(value, float) and not value.is_integer():
                return value, f"{shown} is not a whole number"
            value = int(value)
        else:
            value = float(value)
        if self.min is not None and value < self.min:
            return value, f"{value} is below the minimum {self.min}"
        if self.max is not None and value > self.max:
            return value, f"{value} is above the maximum {self.max}"
        return value, None

    def describe(self) -> str:
        """The type and limits in a few words, for ``comfy-run show``."""
        if self.type == "choice":
            return "one of " + ", ".join(map(str, self.choices or ()))
        bits = [self.type]
        if self.min is not None or self.max is not None:
            bits.append(f"{self.min if self.min is not None else ''}..{self.max if self.max is not None else ''}")
        if self.type == "model" and self.folder:
            bits.append(f"in models/{self.folder}")
        if self.type == "image":
            bits.append("local file (uploaded) or server input name")
        if self.type == "folder":
            bits.append("local folder (its images uploaded) or a folder in the server's input directory")
        return " ".join(bits)


@dataclass(frozen=True)
class Entry:
    """One registry workflow: template file plus parameters."""

    id: str
    title: str
    description: str
    file: Path
    parameters: dict[str, Parameter] = field(default_factory=dict)
    category: str = DEFAULT_CATEGORY

    def json_schema(self) -> dict[str, Any]:
        """The parameters as a JSON Schema (draft 2020-12); see :func:`workflow_schema`."""
        return workflow_schema(self)

    def template(self) -> dict[str, Any]:
        """A fresh copy of the API-format template."""
        try:
            return json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkflowError(f"registry workflow '{self.id}': cannot read template {self.file.name}: {exc}") from None

    def overrides(self, params: list[str] | Mapping[str, Any]) -> tuple[list[str], list[str], dict[str, Any]]:
        """Turn ``name=value`` strings (the command line), or a mapping of JSON values (a web form,
        checked as :meth:`json_schema` describes), into ``(sets, inputs, values)`` for
        :func:`prepare_workflow`.

        Every problem (unknown name, bad value, two parameters writing one input) is collected
        and raised together as a :class:`WorkflowError`; the messages are the same either way.
        """
        problems: list[str] = []
        values: dict[str, Any] = {}
        pairs: list[tuple[str, Any, bool]] = []  # (name, value, value is command-line text)
        if isinstance(params, Mapping):
            pairs = [(str(name), value, False) for name, value in params.items()]
        else:
            for text in params:
                name, sep, raw = text.partition("=")
                if not sep or not name.strip():
                    problems.append(f"--param {text!r}: expected NAME=VALUE")
                    continue
                pairs.append((name.strip(), raw, True))
        for name, raw, is_text in pairs:
            parameter = self.parameters.get(name)
            if parameter is None:
                close = difflib.get_close_matches(name, list(self.parameters), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"parameters: {', '.join(self.parameters)}"
                problems.append(f"--param {name}: '{self.id}' has no parameter '{name}' ({hint})")
                continue
            value, problem = parameter.coerce(raw) if is_text else parameter.check(raw)
            if problem:
                problems.append(f"--param {name}: {problem}")
            else:
                values[name] = value
        written: dict[Target, str] = {}
        for name in values:
            for target in self.parameters[name].targets:
                if target in written and written[target] != name:
                    problems.append(f"--param {name} and --param {written[target]} both set node {target.node} input '{target.input}'")
                written[target] = name
        if problems:
            raise WorkflowError(problems)
        sets: list[str] = []
        inputs: list[str] = []
        for name, value in values.items():
            parameter = self.parameters[name]
            for target in parameter.targets:
                key = f"{target.node}.{target.input}"
                if parameter.type in UPLOAD_TYPES and UPLOAD_TYPES[parameter.type](Path(str(value)).expanduser()):
                    inputs.append(f"{key}={value}")
                else:
                    sets.append(f"{key}={json.dumps(value)}")
        return sets, inputs, values


def _parse_parameter(entry_id: str, name: str, raw: dict[str, Any], problems: list[str]) -> Parameter | None:
    where = f"registry workflow '{entry_id}' parameter '{name}'"
    kind = raw.get("type")
    if kind not in PARAMETER_TYPES:
        problems.append(f"{where}: type {kind!r} is not one of {', '.join(sorted(PARAMETER_TYPES))}")
        return None
    targets = raw.get("targets") or []
    if not targets or not all(isinstance(t, dict) and "node" in t and "input" in t for t in targets):
        problems.append(f"{where}: needs 'targets': [{{'node': ID, 'input': NAME}}, ...]")
        return None
    if kind == "choice" and not raw.get("choices"):
        problems.append(f"{where}: a choice parameter needs 'choices'")
        return None
    return Parameter(
        name=name,
        type=kind,
        description=str(raw.get("description", "")),
        targets=tuple(Target(str(t["node"]), str(t["input"])) for t in targets),
        default=raw.get("default"),
        min=raw.get("min"),
        max=raw.get("max"),
        choices=tuple(raw["choices"]) if raw.get("choices") else None,
        folder=raw.get("folder"),
    )


@dataclass
class Registry:
    """All registry entries by id."""

    entries: dict[str, Entry]

    def get(self, entry_id: str) -> Entry:
        if entry_id not in self.entries:
            close = difflib.get_close_matches(entry_id, list(self.entries), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise WorkflowError(f"no registry workflow '{entry_id}'{hint}; 'comfy-run list' shows them all")
        return self.entries[entry_id]


def load_registry(path: Path = REGISTRY_FILE) -> Registry:
    """Read and structurally check ``registry.json``; raises :class:`WorkflowError` on any problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkflowError(f"cannot read workflow registry {path}: {exc}") from None
    problems: list[str] = []
    entries: dict[str, Entry] = {}
    for raw in data.get("workflows") or []:
        entry_id = raw.get("id")
        if not entry_id or entry_id in entries:
            problems.append(f"registry entry with missing or duplicate id: {entry_id!r}")
            continue
        parameters = {}
        for name, spec in (raw.get("parameters") or {}).items():
            parameter = _parse_parameter(entry_id, name, spec, problems)
            if parameter is not None:
                parameters[name] = parameter
        entries[entry_id] = Entry(
            id=entry_id,
            title=str(raw.get("title", entry_id)),
            description=str(raw.get("description", "")),
            file=path.parent / str(raw.get("file", "")),
            parameters=parameters,
            category=str(raw.get("category") or DEFAULT_CATEGORY),
        )
    if problems:
        raise WorkflowError(problems)
    return Registry(entries)


def check_entry(entry: Entry) -> list[str]:
    """Problems with an entry's template: missing file, targets that are not node inputs, bad defaults."""
    try:
        template = entry.template()
    except WorkflowError as exc:
        return exc.problems
    problems = []
    for parameter in entry.parameters.values():
        where = f"'{entry.id}' parameter '{parameter.name}'"
        for target in parameter.targets:
            node = template.get(target.node)
            if node is None:
                problems.append(f"{where}: node {target.node} is not in {entry.file.name}")
            elif target.input not in node.get("inputs", {}):
                problems.append(f"{where}: node {target.node} ({node.get('class_type')}) has no input '{target.input}'")
            elif isinstance(node["inputs"][target.input], list):
                problems.append(f"{where}: node {target.node} input '{target.input}' is a link, not a value")
            elif parameter.default is not None and node["inputs"][target.input] != parameter.default:
                problems.append(f"{where}: default {parameter.default!r} differs from the template's {node['inputs'][target.input]!r}")
        if parameter.default is not None and parameter.type not in UPLOAD_TYPES:
            _, problem = parameter.coerce(json.dumps(parameter.default) if not isinstance(parameter.default, str) else parameter.default)
            if problem:
                problems.append(f"{where}: default is invalid: {problem}")
    return problems


def resolve_workflow(source: str, registry: Registry | None = None) -> tuple[dict[str, Any] | Path, Entry | None]:
    """A registry id gives its template (and entry); anything else is taken as a workflow file path."""
    registry = registry or load_registry()
    if source in registry.entries and not Path(source).is_file():
        entry = registry.entries[source]
        return entry.template(), entry
    return Path(source), None


def parameter_schema(parameter: Parameter) -> dict[str, Any]:
    """One parameter as a JSON Schema: its JSON type, limits, choices, default and description.

    Keywords of our own, which JSON Schema validators ignore and form builders can read:

    * ``x-comfy-file``: ``"file"`` or ``"folder"``: the value is a local path that comfy-run uploads
      (or a name in the server's input folder); a form shows a file picker. ``contentMediaType``
      is set too when the default's extension tells the kind (``image/*``, ``video/*``);
    * ``x-comfy-model-folder``: the value is a model file name from ``GET /models/<folder>``;
    * ``x-comfy-targets``: the node inputs the parameter writes (``[{"node", "input"}]``).
    """
    schema: dict[str, Any] = {"title": parameter.name, "description": parameter.description}
    if parameter.type == "choice":
        schema["enum"] = list(parameter.choices_or_empty)
    else:
        schema["type"] = _SCHEMA_TYPES.get(parameter.type, "string")
    if parameter.type in ("int", "float"):
        if parameter.min is not None:
            schema["minimum"] = parameter.min
        if parameter.max is not None:
            schema["maximum"] = parameter.max
    if parameter.default is not None:
        schema["default"] = parameter.default
    if parameter.type == "model":
        schema["x-comfy-model-folder"] = parameter.folder or ""
    if parameter.type in UPLOAD_TYPES:
        schema["x-comfy-file"] = "folder" if parameter.type == "folder" else "file"
        kind = mimetypes.guess_type(str(parameter.default or ""))[0]
        if parameter.type == "image" and kind:
            schema["contentMediaType"] = kind.split("/")[0] + "/*"
    schema["x-comfy-targets"] = [{"node": target.node, "input": target.input} for target in parameter.targets]
    return schema


def workflow_schema(entry: Entry) -> dict[str, Any]:
    """A registry workflow's parameters as one JSON Schema (draft 2020-12) for an object of values.

    Every parameter is optional (the template holds its default), no other name is allowed, and
    parameters that write the same node input exclude each other. A parameter set the schema accepts is one :meth:`Entry.overrides` accepts, and the other way round
    (tested). ``x-comfy-workflow`` and ``x-comfy-category`` name the entry.
    """
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:comfy-run:workflow:{entry.id}",
        "title": entry.title,
        "description": entry.description,
        "type": "object",
        "properties": {name: parameter_schema(parameter) for name, parameter in entry.parameters.items()},
        "additionalProperties": False,
    }
    # Parameters that write one node input exclude each other ('size' against 'width'), as overrides() says.
    exclusive = {name: [other for other, rival in entry.parameters.items()
                        if other != name and set(rival.targets) & set(parameter.targets)]
                 for name, parameter in entry.parameters.items()}
    if any(exclusive.values()):
        schema["dependentSchemas"] = {name: {"not": {"anyOf": [{"required": [other]} for other in others]}}
                                      for name, others in exclusive.items() if others}
    schema["x-comfy-workflow"] = entry.id
    schema["x-comfy-category"] = entry.category
    return schema
