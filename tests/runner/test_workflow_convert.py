"""UI -> API conversion: the real frontend exports, and each editor construct on small graphs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from runner.workflow import WorkflowError, to_api
from runner.workflow.convert import ui_to_api

FIXTURES = Path(__file__).parent / "fixtures"
REAL_EXPORTS = ["01_empty_invert_save", "02_load_scale_multi_output", "03_batch_progress"]


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    return json.loads((FIXTURES / "object_info.json").read_text())


def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _assert_same_graph(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(got) == set(expected)
    for node_id, node in expected.items():
        assert got[node_id]["class_type"] == node["class_type"], node_id
        assert got[node_id]["inputs"] == node["inputs"], node_id
        if "_meta" in node:
            assert got[node_id]["_meta"]["title"] == node["_meta"]["title"], node_id


@pytest.mark.parametrize("name", REAL_EXPORTS)
def test_real_frontend_export_converts_to_its_api_export(name: str, object_info: dict[str, Any]) -> None:
    api, kind = to_api(_load(f"workflows/{name}.ui.json"), object_info)
    assert kind == "ui"
    _assert_same_graph(api, _load(f"workflows/{name}.api.json"))
    _assert_same_graph(api, _load(f"roundtrip/{name}.roundtrip.api.json"))


@pytest.mark.parametrize("name", REAL_EXPORTS)
def test_positional_widgets_alone_give_the_same_result(name: str, object_info: dict[str, Any]) -> None:
    # Older frontends do not write widgets_values_named: positions must be enough.
    ui = _load(f"workflows/{name}.ui.json")
    for node in ui["nodes"]:
        node.pop("widgets_values_named", None)
    _assert_same_graph(ui_to_api(ui, object_info), _load(f"roundtrip/{name}.roundtrip.api.json"))


# ----- small hand-built graphs in the frontend's layout -----


def node(
    node_id: int,
    kind: str,
    widgets: list[Any] | None = None,
    inputs: list[tuple] = (),
    outputs: list[tuple] = (),
    mode: int = 0,
    title: str | None = None,
) -> dict[str, Any]:
    made: dict[str, Any] = {
        "id": node_id,
        "type": kind,
        "mode": mode,
        "inputs": [
            {"name": i[0], "type": i[1], "link": i[2], **({"widget": {"name": i[0]}} if len(i) > 3 and i[3] else {})}
            for i in inputs
        ],
        "outputs": [{"name": o[0], "type": o[1], "links": list(o[2])} for o in outputs],
        "properties": {},
    }
    if widgets is not None:
        made["widgets_values"] = widgets
    if title:
        made["title"] = title
    return made


def graph(nodes: list[dict], links: list[list], **extra: Any) -> dict[str, Any]:
    return {"id": "x", "revision": 0, "nodes": nodes, "links": links, "groups": [], "version": 0.4, **extra}


def _txt2img(seed_widgets: list[Any]) -> dict[str, Any]:
    return graph(
        [
            node(4, "CheckpointLoaderSimple", ["sd.safetensors"], outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [8])]),
            node(6, "CLIPTextEncode", ["a cat"], inputs=[("clip", "CLIP", 2)], outputs=[("C", "CONDITIONING", [4])], title="Positive"),
            node(7, "CLIPTextEncode", ["blurry"], inputs=[("clip", "CLIP", 3)], outputs=[("C", "CONDITIONING", [5])], title="Negative"),
            node(5, "EmptyLatentImage", [1024, 1024, 1], outputs=[("LATENT", "LATENT", [6])]),
            node(
                3,
                "KSampler",
                seed_widgets,
                inputs=[("model", "MODEL", 1), ("positive", "CONDITIONING", 4), ("negative", "CONDITIONING", 5), ("latent_image", "LATENT", 6)],
                outputs=[("LATENT", "LATENT", [7])],
            ),
            node(8, "VAEDecode", inputs=[("samples", "LATENT", 7), ("vae", "VAE", 8)], outputs=[("IMAGE", "IMAGE", [9])]),
            node(9, "SaveImage", ["out"], inputs=[("images", "IMAGE", 9)]),
        ],
        [
            [1, 4, 0, 3, 0, "MODEL"], [2, 4, 1, 6, 0, "CLIP"], [3, 4, 1, 7, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
            [5, 7, 0, 3, 2, "CONDITIONING"], [6, 5, 0, 3, 3, "LATENT"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
            [9, 8, 0, 9, 0, "IMAGE"],
        ],
    )


def test_seed_control_widget_value_is_skipped(object_info: dict[str, Any]) -> None:
    api = ui_to_api(_txt2img([1234, "randomize", 25, 6.5, "euler", "karras", 1.0]), object_info)
    assert api["3"]["inputs"] == {
        "seed": 1234, "steps": 25, "cfg": 6.5, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0,
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
    }
    assert api["6"]["_meta"]["title"] == "Positive"
    assert api["8"]["_meta"]["title"] == "VAE Decode"  # no UI title: the class's display name


def test_seed_without_saved_control_value_still_lines_up(object_info: dict[str, Any]) -> None:
    api = ui_to_api(_txt2img([77, 30, 7.0, "dpmpp_2m", "normal", 0.5]), object_info)
    assert (api["3"]["inputs"]["seed"], api["3"]["inputs"]["steps"], api["3"]["inputs"]["denoise"]) == (77, 30, 0.5)


def _chain(middle: dict[str, Any], extra_nodes: list[dict] = (), extra_links: list[list] = ()) -> dict[str, Any]:
    """EmptyImage(1) -> middle(2) -> SaveImage(3)."""
    return graph(
        [
            node(1, "EmptyImage", [8, 8, 1, 0], outputs=[("IMAGE", "IMAGE", [1])]),
            middle,
            node(3, "SaveImage", ["x"], inputs=[("images", "IMAGE", 2)]),
            *extra_nodes,
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], *extra_links],
    )


def test_reroute_is_resolved_to_its_source(object_info: dict[str, Any]) -> None:
    reroute = node(2, "Reroute", inputs=[("", "*", 1)], outputs=[("", "IMAGE", [2])])
    api = ui_to_api(_chain(reroute), object_info)
    assert set(api) == {"1", "3"}
    assert api["3"]["inputs"]["images"] == ["1", 0]


def test_bypassed_node_passes_its_input_through_by_type(object_info: dict[str, Any]) -> None:
    invert = node(2, "ImageInvert", inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", "IMAGE", [2])], mode=4)
    api = ui_to_api(_chain(invert), object_info)
    assert set(api) == {"1", "3"}
    assert api["3"]["inputs"]["images"] == ["1", 0]


def test_bypass_matches_by_type_not_by_slot(object_info: dict[str, Any]) -> None:
    # A bypassed node whose output 0 (IMAGE) must take its IMAGE input, which sits at slot 1.
    scale = node(2, "ImageBlend", [0.5, "normal"], inputs=[("mask_like", "MASK", None), ("image2", "IMAGE", 1)],
                 outputs=[("IMAGE", "IMAGE", [2])], mode=4)
    api = ui_to_api(_chain(scale), object_info)
    assert api["3"]["inputs"]["images"] == ["1", 0]


def test_muted_node_is_dropped_and_its_consumers_lose_the_link(object_info: dict[str, Any]) -> None:
    invert = node(2, "ImageInvert", inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", "IMAGE", [2])], mode=2)
    api = ui_to_api(_chain(invert), object_info)
    assert set(api) == {"1", "3"}
    assert "images" not in api["3"]["inputs"]
    assert api["3"]["inputs"]["filename_prefix"] == "x"


def test_primitive_node_value_feeds_a_converted_widget(object_info: dict[str, Any]) -> None:
    ui = _chain(
        node(2, "ImageScale", ["bilinear", 16, 16, "disabled"],
             inputs=[("image", "IMAGE", 1), ("width", "INT", 3, True)], outputs=[("IMAGE", "IMAGE", [2])]),
        extra_nodes=[node(4, "PrimitiveNode", [320, "fixed"], outputs=[("INT", "INT", [3])], title="Width")],
        extra_links=[[3, 4, 0, 2, 1, "INT"]],
    )
    api = ui_to_api(ui, object_info)
    assert "4" not in api
    assert api["2"]["inputs"]["width"] == 320
    assert api["2"]["inputs"]["height"] == 16


def test_groups_and_notes_are_ignored(object_info: dict[str, Any]) -> None:
    ui = _chain(node(2, "ImageInvert", inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", "IMAGE", [2])]),
                extra_nodes=[node(9, "Note", ["remember"]), node(10, "MarkdownNote", ["# hi"])])
    ui["groups"] = [{"id": 1, "title": "Group", "bounding": [0, 0, 500, 500]}]
    assert set(ui_to_api(ui, object_info)) == {"1", "2", "3"}


def test_subgraph_is_expanded_with_prefixed_ids(object_info: dict[str, Any]) -> None:
    definition = {
        "id": "aaaaaaaa-0000-0000-0000-000000000001",
        "name": "invert twice",
        "inputs": [{"id": "i0", "name": "image", "type": "IMAGE", "linkIds": [11]}],
        "outputs": [{"id": "o0", "name": "IMAGE", "type": "IMAGE", "linkIds": [13]}],
        "nodes": [
            node(1, "ImageInvert", inputs=[("image", "IMAGE", 11)], outputs=[("IMAGE", "IMAGE", [12])]),
            node(2, "ImageScaleBy", ["nearest-exact", 2.0], inputs=[("image", "IMAGE", 12)], outputs=[("IMAGE", "IMAGE", [13])]),
        ],
        "links": [
            {"id": 11, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
            {"id": 12, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
            {"id": 13, "origin_id": 2, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
        ],
    }
    outer = node(2, definition["id"], inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", "IMAGE", [2])])
    ui = _chain(outer)
    ui["definitions"] = {"subgraphs": [definition]}
    api = ui_to_api(ui, object_info)
    assert set(api) == {"1", "2:1", "2:2", "3"}
    assert api["2:1"]["inputs"]["image"] == ["1", 0]
    assert api["2:2"]["inputs"] == {"upscale_method": "nearest-exact", "scale_by": 2.0, "image": ["2:1", 0]}
    assert api["3"]["inputs"]["images"] == ["2:2", 0]


def test_dynamic_combo_and_optional_widgets(object_info: dict[str, Any]) -> None:
    # Hand-made in the frontend's layout: SaveVideo saves [prefix, format, format.codec, codec].
    ui = graph(
        [
            node(1, "EmptyImage", [64, 64, 8, 65280], outputs=[("IMAGE", "IMAGE", [1])], title="8 green frames"),
            node(2, "CreateVideo", [8, 8], inputs=[("images", "IMAGE", 1), ("audio", "AUDIO", None)], outputs=[("VIDEO", "VIDEO", [2])]),
            node(3, "SaveVideo", ["demo/video", "auto", "auto", "auto"], inputs=[("video", "VIDEO", 2)]),
            node(4, "EmptyAudio", [0.5, 16000, 1], outputs=[("AUDIO", "AUDIO", [3])]),
            node(5, "SaveAudio", ["demo/audio"], inputs=[("audio", "AUDIO", 3)], title="Save Audio (FLAC)"),
            node(6, "PrimitiveString", ["hello from demo"], outputs=[("STRING", "STRING", [4])], title="String"),
            node(7, "PreviewAny", [], inputs=[("source", "*", 4)]),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "VIDEO"], [3, 4, 0, 5, 0, "AUDIO"], [4, 6, 0, 7, 0, "STRING"]],
    )
    _assert_same_graph(ui_to_api(ui, object_info), _load("roundtrip/04_video_audio_text.roundtrip.api.json"))


def test_unknown_class_and_group_node_are_reported_together(object_info: dict[str, Any]) -> None:
    ui = _chain(node(2, "FancyCustomNode", [1], inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", "IMAGE", [2])]),
                extra_nodes=[node(5, "workflow>My group", [])])
    with pytest.raises(WorkflowError) as caught:
        ui_to_api(ui, object_info)
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("node 2 (FancyCustomNode)" in p and "not installed" in p for p in problems)
    assert any("node 5" in p and "group node" in p for p in problems)


def test_too_few_widget_values_names_the_node(object_info: dict[str, Any]) -> None:
    ui = _chain(node(2, "ImageScale", ["bilinear", 16], inputs=[("image", "IMAGE", 1)], outputs=[("IMAGE", "IMAGE", [2])]))
    with pytest.raises(WorkflowError, match=r"node 2 \(ImageScale\).*height, crop"):
        ui_to_api(ui, object_info)


def test_dangling_link_is_an_error(object_info: dict[str, Any]) -> None:
    ui = _chain(node(2, "ImageInvert", inputs=[("image", "IMAGE", 99)], outputs=[("IMAGE", "IMAGE", [2])]))
    with pytest.raises(WorkflowError, match="link 99"):
        ui_to_api(ui, object_info)


def test_conversion_does_not_modify_the_ui_graph(object_info: dict[str, Any]) -> None:
    ui = _load("workflows/02_load_scale_multi_output.ui.json")
    before = copy.deepcopy(ui)
    ui_to_api(ui, object_info)
    assert ui == before
