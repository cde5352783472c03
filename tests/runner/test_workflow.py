"""Loading, format detection, --set/--input overrides, validation and preflight (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.errors import ComfyRunError, ExitCode
from runner.workflow import (
    PreparedWorkflow,
    WorkflowError,
    detect_format,
    load_workflow,
    parse_value,
    prepare_workflow,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info = json.loads((FIXTURES / "object_info.json").read_text())
    # A server with one checkpoint installed and one image in its input folder.
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["sd_xl_base_1.0.safetensors"]
    info["LoadImage"]["input"]["required"]["image"][0] = ["demo_input.png"]
    return info


def _txt2img() -> dict[str, Any]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}, "_meta": {"title": "Positive"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}, "_meta": {"title": "Negative"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "out"}},
    }


def _no_upload(path: Path) -> str:
    raise AssertionError(f"unexpected upload of {path}")


def _prepare(object_info: dict[str, Any], sets: list[str] = (), inputs: list[str] = (), **kw: Any) -> PreparedWorkflow:
    return prepare_workflow(_txt2img(), object_info, list(sets), list(inputs), kw.pop("upload", _no_upload), **kw)


# ----- loading -----


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="not found") as caught:
        load_workflow(tmp_path / "nope.json")
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == ExitCode.WORKFLOW
    assert isinstance(caught.value, ComfyRunError)


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"1": {"class_type": "X",\n "inputs": }')
    with pytest.raises(WorkflowError, match=r"not valid JSON \(line 2, column"):
        load_workflow(path)


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(WorkflowError, match="JSON list"):
        load_workflow(path)


def test_format_detection() -> None:
    assert detect_format(_txt2img()) == "api"
    assert detect_format(json.loads((FIXTURES / "workflows/01_empty_invert_save.ui.json").read_text())) == "ui"
    with pytest.raises(WorkflowError, match="not a ComfyUI workflow"):
        detect_format({"hello": "world"})
    with pytest.raises(WorkflowError, match="empty"):
        detect_format({})


def test_browser_wrapper_is_accepted(object_info: dict[str, Any]) -> None:
    prepared = prepare_workflow({"client_id": "x", "prompt": _txt2img()}, object_info, [], [], _no_upload)
    assert set(prepared.api) == set(_txt2img())


def test_file_is_not_modified(tmp_path: Path, object_info: dict[str, Any]) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(_txt2img()))
    before = path.read_bytes()
    prepared = prepare_workflow(path, object_info, ["3.seed=5"], [], _no_upload)
    assert prepared.api["3"]["inputs"]["seed"] == 5
    assert path.read_bytes() == before


# ----- --set -----


def test_parse_value_json_or_string() -> None:
    assert parse_value("42") == 42
    assert parse_value("4.5") == 4.5
    assert parse_value("true") is True
    assert parse_value("a cat") == "a cat"
    assert parse_value('"7"') == "7"


def test_targets_by_id_title_and_unique_class(object_info: dict[str, Any]) -> None:
    prepared = _prepare(object_info, ["3.seed=42", "Positive.text=a dog", "KSampler.steps=30", "EmptyLatentImage.width=768"])
    inputs = prepared.api
    assert inputs["3"]["inputs"]["seed"] == 42
    assert inputs["6"]["inputs"]["text"] == "a dog"
    assert inputs["3"]["inputs"]["steps"] == 30
    assert inputs["5"]["inputs"]["width"] == 768
    assert [o["node"] for o in prepared.overrides] == ["3", "6", "3", "5"]
    assert prepared.overrides[0]["previous"] == 1 and prepared.overrides[0]["value"] == 42
    json.dumps(prepared.overrides)  # must be JSON-serialisable for the manifest
    assert prepared.titles["6"] == "Positive"
    assert prepared.titles["5"] == "Empty Latent Image"
    assert prepared.class_types["3"] == "KSampler"
    assert prepared.source_format == "api"


def test_ambiguous_class_lists_candidates(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match=r"matches 2 nodes \(node 6 .*'Positive'.*node 7 .*'Negative'"):
        _prepare(object_info, ["CLIPTextEncode.text=x"])


def test_string_value_that_looks_numeric_stays_text(object_info: dict[str, Any]) -> None:
    assert _prepare(object_info, ["Positive.text=123"]).api["6"]["inputs"]["text"] == "123"


def test_all_override_problems_reported_at_once(object_info: dict[str, Any]) -> None:
    sets = [
        "3.sed=1",  # no such input
        "3.steps=0",  # below min
        "3.cfg=500",  # above max
        "3.sampler_name=nope",  # not a choice
        "3.steps=many",  # not a number
        "Ghost.x=1",  # no such node
        "3.model=1",  # socket input
        "no-dot-here",  # malformed
    ]
    with pytest.raises(WorkflowError) as caught:
        _prepare(object_info, sets)
    problems = caught.value.problems
    assert len(problems) == len(sets)
    text = "\n".join(problems)
    assert "did you mean 'seed'" in text
    assert "below the minimum 1" in text
    assert "above the maximum 100" in text
    assert "'nope' is not one of" in text
    assert "'many' is not a number" in text
    assert "no node has id, title or class 'Ghost'" in text
    assert "takes a link of type MODEL" in text
    assert "expected TARGET.INPUT=VALUE" in text
    assert str(caught.value).startswith(f"{len(sets)} problems found")


def test_boolean_and_float_types(object_info: dict[str, Any]) -> None:
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
           "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "a", "fps": 6.0,
                                                              "lossless": True, "quality": 80, "method": "default"}}}
    prepared = prepare_workflow(api, object_info, ["2.lossless=false", "2.fps=12"], [], _no_upload)
    assert prepared.api["2"]["inputs"]["lossless"] is False
    assert prepared.api["2"]["inputs"]["fps"] == 12.0
    with pytest.raises(WorkflowError, match="not a boolean"):
        prepare_workflow(api, object_info, ["2.lossless=yes"], [], _no_upload)


# ----- uploads -----


def _load_image_workflow() -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "demo_input.png"}, "_meta": {"title": "Source"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }


def test_input_option_uploads_and_sets_returned_name(tmp_path: Path, object_info: dict[str, Any]) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"png")
    sent: list[Path] = []

    def upload(path: Path) -> str:
        sent.append(path)
        return "cat (1).png"

    prepared = prepare_workflow(_load_image_workflow(), object_info, [], [f"Source.image={picture}"], upload)
    assert sent == [picture]
    assert prepared.api["1"]["inputs"]["image"] == "cat (1).png"
    assert prepared.overrides[0]["uploaded_from"] == str(picture)


def test_set_with_local_path_on_image_input_uploads(tmp_path: Path, object_info: dict[str, Any]) -> None:
    picture = tmp_path / "dog.png"
    picture.write_bytes(b"png")
    prepared = prepare_workflow(_load_image_workflow(), object_info, [f"LoadImage.image={picture}"], [], lambda p: p.name)
    assert prepared.api["1"]["inputs"]["image"] == "dog.png"


def test_nothing_uploaded_when_another_problem_exists(tmp_path: Path, object_info: dict[str, Any]) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(b"png")
    with pytest.raises(WorkflowError) as caught:
        prepare_workflow(_load_image_workflow(), object_info, ["2.filename_prefix=[1]"], [f"1.image={picture}"], _no_upload)
    assert len(caught.value.problems) == 1


def test_input_option_missing_local_file(tmp_path: Path, object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="local file not found"):
        prepare_workflow(_load_image_workflow(), object_info, [], [f"1.image={tmp_path / 'none.png'}"], _no_upload)


# ----- preflight -----


def test_preflight_reports_missing_classes_models_and_files_together(object_info: dict[str, Any]) -> None:
    api = _txt2img()
    api["4"]["inputs"]["ckpt_name"] = "missing_model.safetensors"
    api["10"] = {"class_type": "NotInstalled", "inputs": {}}
    api["11"] = {"class_type": "LoadImage", "inputs": {"image": "never_uploaded.png"}}
    api["12"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "style.safetensors",
                                                        "strength_model": 1.0, "strength_clip": 1.0}}
    with pytest.raises(WorkflowError) as caught:
        prepare_workflow(api, object_info, [], [], _no_upload)
    text = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 4
    assert "model file 'missing_model.safetensors' is missing on models/checkpoints" in text
    assert "model file 'style.safetensors' is missing on models/loras" in text
    assert "class 'NotInstalled' is not installed" in text
    assert "input file 'never_uploaded.png' is not on the server" in text


def test_preflight_asks_models_listing_when_object_info_is_stale(object_info: dict[str, Any]) -> None:
    asked: list[str] = []

    def models(folder: str) -> list[str]:
        asked.append(folder)
        return ["new.safetensors"]

    prepared = _prepare(object_info, ["4.ckpt_name=new.safetensors"], models=models)
    assert prepared.api["4"]["inputs"]["ckpt_name"] == "new.safetensors"
    assert asked == ["checkpoints"]


def test_override_of_model_to_missing_file_is_reported(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="model file 'other.safetensors' is missing"):
        _prepare(object_info, ["4.ckpt_name=other.safetensors"], models=lambda folder: [])


def test_link_to_missing_node(object_info: dict[str, Any]) -> None:
    api = _txt2img()
    api["9"]["inputs"]["images"] = ["77", 0]
    with pytest.raises(WorkflowError, match="linked to node 77"):
        prepare_workflow(api, object_info, [], [], _no_upload)


def test_ui_workflow_through_the_seam(object_info: dict[str, Any]) -> None:
    prepared = prepare_workflow(FIXTURES / "workflows/02_load_scale_multi_output.ui.json", object_info,
                                ["Upscale Image.width=128"], [], _no_upload)
    assert prepared.source_format == "ui"
    assert prepared.api["2"]["inputs"]["width"] == 128
    assert prepared.titles["1"] == "Load Image (upload demo_input.png first)"


def test_titles_and_input_names_with_dots(object_info: dict[str, Any]) -> None:
    api = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "v", "format": "auto",
                                                    "format.codec": "auto"}, "_meta": {"title": "Save v1.5"}},
    }
    prepared = prepare_workflow(api, object_info, ["Save v1.5.filename_prefix=out/v2", "3.format.codec=h264"], [], _no_upload)
    assert prepared.api["3"]["inputs"]["filename_prefix"] == "out/v2"
    assert prepared.api["3"]["inputs"]["format.codec"] == "h264"
    with pytest.raises(WorkflowError, match="'vp9' is not one of"):
        prepare_workflow(api, object_info, ["3.format.codec=vp9"], [], _no_upload)
