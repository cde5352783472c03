"""Every-node overrides: ``--set '*.INPUT=VALUE'`` sets INPUT on every node that has it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fake_server import FakeComfyServer
from runner.cli import main
from runner.errors import ExitCode
from runner.workflow import WorkflowError, prepare_workflow

FIXTURES = Path(__file__).parent / "fixtures"
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    info = json.loads((FIXTURES / "object_info.json").read_text())
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["sd_xl_base_1.0.safetensors"]
    return info


def two_pass() -> dict[str, Any]:
    """A base pass and an upscaled second pass: two samplers, a latent size and an image scale."""
    sampler = {"steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
               "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]}
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {**sampler, "seed": 1, "denoise": 1.0, "latent_image": ["5", 0]}},
        "10": {"class_type": "LatentUpscaleBy", "inputs": {"upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["3", 0]}},
        "11": {"class_type": "KSampler", "inputs": {**sampler, "seed": 2, "denoise": 0.5, "latent_image": ["10", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}},
        "12": {"class_type": "ImageScale", "inputs": {"upscale_method": "nearest-exact", "width": 512, "height": 512,
                                                     "crop": "disabled", "image": ["8", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "out"}},
    }


def prepare(object_info: dict[str, Any], sets: list[str], workflow: dict[str, Any] | None = None) -> Any:
    return prepare_workflow(workflow or two_pass(), object_info, sets, [], lambda path: path.name)


def test_wildcard_sets_the_input_on_every_node_that_has_it(object_info: dict[str, Any]) -> None:
    prepared = prepare(object_info, ["*.seed=42", "*.width=768", "*.height=640"])
    api = prepared.api
    assert api["3"]["inputs"]["seed"] == api["11"]["inputs"]["seed"] == 42
    assert api["5"]["inputs"]["width"] == api["12"]["inputs"]["width"] == 768
    assert api["5"]["inputs"]["height"] == api["12"]["inputs"]["height"] == 640
    assert api["10"]["inputs"] == two_pass()["10"]["inputs"]  # nodes without the input are left alone
    seeds = [r for r in prepared.overrides if r["input"] == "seed"]
    assert [(r["node"], r["target"], r["previous"], r["value"]) for r in seeds] == [("3", "*.seed", 1, 42), ("11", "*.seed", 2, 42)]


def test_a_linked_input_is_left_linked(object_info: dict[str, Any]) -> None:
    workflow = two_pass()
    workflow["13"] = {"class_type": "PrimitiveInt", "inputs": {"value": 7}}
    workflow["11"]["inputs"]["seed"] = ["13", 0]  # the second pass takes its seed from a node
    api = prepare(object_info, ["*.seed=42"], workflow).api
    assert api["3"]["inputs"]["seed"] == 42 and api["11"]["inputs"]["seed"] == ["13", 0]


def test_a_wildcard_that_matches_no_node_is_an_error(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError) as caught:
        prepare(object_info, ["*.sede=42", "*.steps=30"])
    assert caught.value.problems == ["--set *.sede: no node has an input 'sede' (did you mean 'seed'?)"]


def test_a_bad_value_names_each_node_it_does_not_fit(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError) as caught:
        prepare(object_info, ["*.steps=0"])
    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].startswith("--set 3.steps:") and caught.value.problems[1].startswith("--set 11.steps:")


def test_an_ordinary_target_still_names_one_node(object_info: dict[str, Any]) -> None:
    with pytest.raises(WorkflowError, match="matches 2 nodes"):
        prepare(object_info, ["KSampler.seed=5"])
    assert prepare(object_info, ["11.seed=5"]).api["3"]["inputs"]["seed"] == 1


def test_cli_wildcard_reaches_the_server_and_a_misspelt_one_queues_nothing(comfy_server: FakeComfyServer,
                                                                           tmp_path: Path) -> None:
    env = {"COMFYUI_API_URL": comfy_server.url, "COMFYUI_POLL_INTERVAL": "0.05"}
    workflow = str(DATA / "01_empty_invert_save.api.json")
    ok = CliRunner().invoke(main, [workflow, "--set", "*.width=32", "--set", "*.height=16", "--out", str(tmp_path),
                                   "--quiet"], env=env)
    assert ok.exit_code == 0, ok.stderr
    prompt_id = comfy_server.executed_prompts[0]
    sent = comfy_server.history[prompt_id]["prompt"][2]["1"]["inputs"]
    assert sent == {**json.loads(Path(workflow).read_text())["1"]["inputs"], "width": 32, "height": 16}
    bad = CliRunner().invoke(main, [workflow, "--set", "*.widht=32"], env=env)
    assert bad.exit_code == ExitCode.WORKFLOW
    assert "no node has an input 'widht' (did you mean 'width'?)" in bad.stderr
    assert comfy_server.posted_prompt_ids() == [prompt_id]
