"""Registry forms: each workflow's parameters as a JSON Schema (draft 2020-12) that agrees with the
registry's own validation, and ``comfy-run list --json`` / ``show --json-schema``."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from runner.cli import main
from runner.registry import Entry, Parameter, load_registry
from runner.workflow import WorkflowError

REGISTRY = load_registry()


def valid_values(parameter: Parameter) -> Iterator[Any]:
    if parameter.default is not None:
        yield parameter.default
    if parameter.type in ("int", "float"):
        for bound in (parameter.min, parameter.max):
            if bound is not None:
                yield bound
        if parameter.type == "int" and parameter.min is not None:
            yield float(parameter.min)  # 64.0 is a whole number: JSON Schema's integer, and ours
    elif parameter.type == "choice":
        yield from parameter.choices_or_empty
    elif parameter.type == "bool":
        yield from (True, False)
    else:
        yield "some name.png"


def invalid_values(parameter: Parameter) -> Iterator[Any]:
    if parameter.type in ("int", "float"):
        yield from ("12", True, None, [1])
        if parameter.min is not None:
            yield parameter.min - 1
        if parameter.max is not None:
            yield parameter.max + 1
        if parameter.type == "int":
            yield (parameter.min or 0) + 0.5
    elif parameter.type == "choice":
        yield from ("no-such-choice", 1, None)
    elif parameter.type == "bool":
        yield from ("true", 1, 0, None)
    else:
        yield from (42, True, None, ["a.png"])


def samples(entry: Entry) -> Iterator[tuple[dict[str, Any], bool]]:
    """(parameter set, expected valid?) pairs: one parameter at a time, all defaults, unknown names."""
    yield {}, True
    defaults = {name: p.default for name, p in entry.parameters.items() if p.default is not None}
    # Parameters that write the same input (solid-invert's 'size' and 'width') may not come together.
    clash = any(set(a.targets) & set(b.targets) for a in entry.parameters.values() for b in entry.parameters.values() if a is not b)
    yield defaults, not clash
    yield {"no_such_parameter": 1}, False
    for name, parameter in entry.parameters.items():
        for value in valid_values(parameter):
            yield {name: value}, True
        for value in invalid_values(parameter):
            yield {name: value}, False


def registry_accepts(entry: Entry, values: dict[str, Any]) -> bool:
    try:
        entry.overrides(values)
    except WorkflowError:
        return False
    return True


@pytest.mark.parametrize("entry_id", sorted(REGISTRY.entries))
def test_schema_is_valid_draft_2020_12(entry_id: str) -> None:
    schema = REGISTRY.entries[entry_id].json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(REGISTRY.entries[entry_id].parameters)


@pytest.mark.parametrize("entry_id", sorted(REGISTRY.entries))
def test_schema_and_registry_agree_on_valid_and_invalid_sets(entry_id: str) -> None:
    entry = REGISTRY.entries[entry_id]
    validator = Draft202012Validator(entry.json_schema())
    checked = {True: 0, False: 0}
    for values, expected in samples(entry):
        by_schema = validator.is_valid(values)
        by_registry = registry_accepts(entry, values)
        assert by_schema == by_registry == expected, (values, by_schema, by_registry)
        checked[expected] += 1
    assert checked[True] >= 3 and checked[False] >= 3


def test_schema_describes_types_limits_choices_files_and_models() -> None:
    schema = REGISTRY.get("sdxl-img2img").json_schema()["properties"]
    assert schema["seed"]["type"] == "integer" and schema["seed"]["minimum"] == 0
    assert schema["denoise"] == {**schema["denoise"], "type": "number", "minimum": 0.0, "maximum": 1.0, "default": 0.6}
    assert "euler" in schema["sampler"]["enum"] and "type" not in schema["sampler"]
    assert schema["image"]["x-comfy-file"] == "file" and schema["image"]["contentMediaType"] == "image/*"
    assert schema["checkpoint"]["x-comfy-model-folder"] == "checkpoints"
    assert schema["prompt"]["description"] and schema["prompt"]["type"] == "string"
    assert REGISTRY.get("colorize-video").json_schema()["properties"]["video"]["contentMediaType"] == "video/*"
    folder = REGISTRY.get("colorize-video-keyframes").json_schema()["properties"]["keyframes"]
    assert folder["x-comfy-file"] == "folder" and folder["type"] == "string" and "contentMediaType" not in folder


def test_parameters_writing_one_input_exclude_each_other() -> None:
    entry = REGISTRY.get("solid-invert")
    validator = Draft202012Validator(entry.json_schema())
    for values, valid in (({"size": 32}, True), ({"size": 32, "color": 1}, True), ({"size": 32, "width": 8}, False),
                          ({"height": 8, "size": 32}, False), ({"width": 8, "height": 8}, True)):
        assert validator.is_valid(values) == registry_accepts(entry, values) == valid, values


def test_form_values_get_the_command_lines_messages() -> None:
    entry = REGISTRY.get("solid-invert")
    with pytest.raises(WorkflowError) as from_form:
        entry.overrides({"width": 0, "colour": 1})
    with pytest.raises(WorkflowError) as from_cli:
        entry.overrides(["width=0", "colour=1"])
    assert from_form.value.problems == from_cli.value.problems
    assert from_form.value.problems[0] == "--param width: 0 is below the minimum 1"
    sets, _, values = entry.overrides({"width": 32.0, "filename_prefix": "x/y"})
    assert values == {"width": 32, "filename_prefix": "x/y"} and "1.width=32" in sets


def test_show_json_schema_and_list_json() -> None:
    shown = CliRunner().invoke(main, ["show", "sdxl-txt2img", "--json-schema"])
    assert shown.exit_code == 0
    schema = json.loads(shown.stdout)
    assert schema == REGISTRY.get("sdxl-txt2img").json_schema()
    Draft202012Validator.check_schema(schema)
    listed = CliRunner().invoke(main, ["list", "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert {row["id"] for row in rows} == set(REGISTRY.entries)
    assert all(row["category"] == REGISTRY.entries[row["id"]].category for row in rows)
    assert all(row["category"] != "other" for row in rows), "every shipped workflow names its category"
    missing = CliRunner().invoke(main, ["show", "no-such-workflow", "--json-schema"])
    assert missing.exit_code == 3 and "no registry workflow" in missing.stderr
