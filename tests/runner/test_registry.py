"""The workflow registry: every template maps onto real node inputs and validates against object_info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.registry import REGISTRY_FILE, check_entry, load_registry, resolve_workflow
from runner.workflow import WorkflowError, prepare_workflow
from runner.workflow.spec import all_input_specs

FIXTURES = Path(__file__).parent / "fixtures"
REGISTRY = load_registry()
MODEL_FILES = {
    "checkpoints": ["sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors", "other.safetensors"],
    "upscale_models": ["RealESRGAN_x4plus.safetensors"],
    "diffusion_models": ["qwen_image_edit_fp8_e4m3fn.safetensors", "flux1-dev-kontext_fp8_scaled.safetensors"],
    "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors", "clip_l.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors"],
    "vae": ["qwen_image_vae.safetensors", "ae.safetensors"],
}
# Core classes of the keyframe-colouring workflows (and of colorize-film, which also previews its
# report and references), as the recorded ComfyUI 0.33 server lists them.
KEYFRAME_CLASSES = ("UNETLoader", "CLIPLoader", "DualCLIPLoader", "VAELoader", "ImageScaleToTotalPixels",
                    "TextEncodeQwenImageEdit", "ModelSamplingAuraFlow", "CFGNorm", "FluxKontextImageScale",
                    "ReferenceLatent", "FluxGuidance", "ConditioningZeroOut", "PreviewAny", "PreviewImage")


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info = json.loads((FIXTURES / "object_info.json").read_text())
    info["LoadImage"]["input"]["required"]["image"][0] = ["input.png", "reference.png"]
    # The colorize workflows: the pack's classes as recorded with it installed, and the video loaders.
    from fake_server import load_object_info

    pack = Path(__file__).parents[1] / "colorize" / "comfyui" / "object_info_colorize.json"
    info.update(json.loads(pack.read_text())["object_info"])
    full = load_object_info()
    info.update({name: full[name] for name in ("LoadVideo", "GetVideoComponents", *KEYFRAME_CLASSES)})
    info["LoadVideo"]["input"]["required"]["file"][1]["options"] = ["input.mp4"]
    return info


def _models(folder: str) -> list[str]:
    return MODEL_FILES.get(folder, [])


def test_registry_has_the_required_kinds() -> None:
    assert {"sdxl-txt2img", "sdxl-img2img", "sdxl-inpaint"} <= set(REGISTRY.entries)


@pytest.mark.parametrize("entry_id", sorted(REGISTRY.entries))
def test_every_mapping_points_at_an_existing_node_input(entry_id: str) -> None:
    assert check_entry(REGISTRY.entries[entry_id]) == []


@pytest.mark.parametrize("entry_id", sorted(REGISTRY.entries))
def test_every_template_passes_preflight_and_parameters_fit_object_info(entry_id: str, object_info: dict) -> None:
    entry = REGISTRY.entries[entry_id]
    prepared = prepare_workflow(entry.template(), object_info, [], [], lambda p: p.name, models=_models)
    for parameter in entry.parameters.values():
        for target in parameter.targets:
            class_type = prepared.api[target.node]["class_type"]
            spec = all_input_specs(object_info[class_type])[target.input]
            assert spec.is_widget, (parameter.name, target)
            if parameter.type == "choice":
                assert set(parameter.choices) <= set(spec.choices), parameter.name
            if parameter.min is not None and "min" in spec.options:
                assert parameter.min >= spec.options["min"], parameter.name
            if parameter.max is not None and "max" in spec.options:
                assert parameter.max <= spec.options["max"], parameter.name


def test_check_entry_catches_a_broken_mapping(tmp_path: Path) -> None:
    data = json.loads(REGISTRY_FILE.read_text())
    entry = next(e for e in data["workflows"] if e["id"] == "solid-invert")
    entry["parameters"]["width"]["targets"] = [{"node": "1", "input": "widht"}]
    entry["parameters"]["color"]["targets"] = [{"node": "42", "input": "color"}]
    entry["parameters"]["height"]["default"] = 99
    (tmp_path / "registry.json").write_text(json.dumps(data))
    (tmp_path / entry["file"]).write_text((REGISTRY_FILE.parent / entry["file"]).read_text())
    problems = check_entry(load_registry(tmp_path / "registry.json").entries["solid-invert"])
    assert len(problems) == 3
    assert any("no input 'widht'" in p for p in problems)
    assert any("node 42 is not in" in p for p in problems)
    assert any("default 99 differs" in p for p in problems)


def test_params_become_validated_overrides(object_info: dict) -> None:
    entry = REGISTRY.get("sdxl-txt2img")
    sets, inputs, values = entry.overrides(["prompt=a red fox", "seed=7", "cfg=5.5", "sampler=dpmpp_2m", "width=768"])
    assert inputs == []
    prepared = prepare_workflow(entry.template(), object_info, sets, inputs, lambda p: p.name, models=_models)
    assert prepared.api["6"]["inputs"]["text"] == "a red fox"
    assert prepared.api["3"]["inputs"]["seed"] == 7
    assert prepared.api["3"]["inputs"]["cfg"] == 5.5
    assert prepared.api["3"]["inputs"]["sampler_name"] == "dpmpp_2m"
    assert prepared.api["5"]["inputs"]["width"] == 768
    assert values["seed"] == 7


def test_text_param_that_looks_like_a_number_stays_text(object_info: dict) -> None:
    entry = REGISTRY.get("sdxl-txt2img")
    sets, inputs, _ = entry.overrides(["prompt=42"])
    prepared = prepare_workflow(entry.template(), object_info, sets, inputs, lambda p: p.name, models=_models)
    assert prepared.api["6"]["inputs"]["text"] == "42"


def test_one_param_with_several_targets(object_info: dict) -> None:
    entry = REGISTRY.get("solid-invert")
    sets, _, _ = entry.overrides(["size=32"])
    prepared = prepare_workflow(entry.template(), object_info, sets, [], lambda p: p.name)
    assert (prepared.api["1"]["inputs"]["width"], prepared.api["1"]["inputs"]["height"]) == (32, 32)


def test_all_param_problems_at_once() -> None:
    entry = REGISTRY.get("sdxl-txt2img")
    with pytest.raises(WorkflowError) as caught:
        entry.overrides(["steps=0", "sampler=bogus", "seeed=1", "cfg=high", "noequals"])
    text = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 5
    assert "below the minimum 1" in text
    assert "'bogus' is not one of" in text
    assert "did you mean 'seed'" in text
    assert "'high' is not a number" in text
    assert "expected NAME=VALUE" in text


def test_conflicting_params_are_refused() -> None:
    with pytest.raises(WorkflowError, match="both set node 1 input 'width'"):
        REGISTRY.get("solid-invert").overrides(["width=10", "size=20"])


def test_image_param_with_local_file_becomes_upload(tmp_path: Path, object_info: dict) -> None:
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"png")
    entry = REGISTRY.get("sdxl-img2img")
    sets, inputs, _ = entry.overrides([f"image={picture}", "denoise=0.4"])
    assert inputs == [f"10.image={picture}"]
    prepared = prepare_workflow(entry.template(), object_info, sets, inputs, lambda p: "photo (1).png", models=_models)
    assert prepared.api["10"]["inputs"]["image"] == "photo (1).png"
    assert prepared.api["3"]["inputs"]["denoise"] == 0.4


def test_missing_model_found_by_preflight(object_info: dict) -> None:
    entry = REGISTRY.get("sdxl-txt2img")
    sets, inputs, _ = entry.overrides(["checkpoint=absent.safetensors"])
    with pytest.raises(WorkflowError, match="model file 'absent.safetensors' is missing on models/checkpoints"):
        prepare_workflow(entry.template(), object_info, sets, inputs, lambda p: p.name, models=_models)


def test_unknown_id_and_file_fallback(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="did you mean 'sdxl-txt2img'"):
        REGISTRY.get("sdxl-txt2im")
    workflow, entry = resolve_workflow("sdxl-inpaint", REGISTRY)
    assert entry is not None and isinstance(workflow, dict) and "11" in workflow
    path, entry = resolve_workflow(str(tmp_path / "wf.json"), REGISTRY)
    assert entry is None and path == tmp_path / "wf.json"
