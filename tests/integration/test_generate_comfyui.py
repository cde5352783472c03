"""``colorize keyframes --generate`` against a real ComfyUI server.

Runs only when ``COMFYUI_DIR`` (a ComfyUI checkout) and ``COMFYUI_PYTHON`` (a Python that runs it)
are set; the server is the one ``comfyui_server.start_server`` starts (own folders, no image
models). Three things are checked:

* ``--generate`` with ``keyframe_tint.api.json`` (core nodes only: LoadImage, ImageScaleBy,
  EmptyImage, ImageBlend, SaveImage) writes every ``ref_NNNNNN.png`` at the frame size, coloured,
  with the grey still's luminance;
* the two shipped workflows (``colorize-keyframe-qwen``, ``colorize-keyframe-kontext``) name only
  classes and inputs the server's ``/object_info`` has, and pass preflight once their model files
  are listed;
* without those files, preflight names every missing one and nothing is queued.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_server import TESTS, get_json, needs_comfyui, start_server  # noqa: E402

sys.path.insert(0, str(TESTS / "colorize" / "references"))

pytestmark = needs_comfyui

KEYFRAME_WORKFLOWS = ("colorize-keyframe-qwen", "colorize-keyframe-kontext")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A ComfyUI server whose model folders hold none of the keyframe workflows' models."""
    for started in start_server(tmp_path_factory):  # the helper's own teardown runs after the loop
        yield started["url"]


@pytest.fixture(scope="module")
def picked(tmp_path_factory):
    from comfy_keyframes import make_keyframes_folder

    return make_keyframes_folder(tmp_path_factory.mktemp("picked"))


def test_generate_with_a_model_free_workflow(server, picked, tmp_path) -> None:
    from comfy_keyframes import STILLS, TINT_WORKFLOW, chroma, copy_folder, gray_level, lightness, read_rgb
    from video_helpers import invoke

    clip, picked_folder = picked
    folder = copy_folder(picked_folder, tmp_path / "refs")
    result = invoke(["keyframes", clip, "-o", folder, "--shots", clip.parent / "cuts.txt",
                     "--generate", TINT_WORKFLOW, "--server", server])
    assert "3 still(s) coloured, 0 already done: 4 colour reference(s) written" in result.stdout
    for still, frames in STILLS.items():
        gray = read_rgb(folder / "gray" / f"ref_{still:06d}.png")
        for frame in frames:
            reference = read_rgb(folder / f"ref_{frame:06d}.png")
            assert reference.shape == (48, 64, 3)
            assert np.abs(gray_level(lightness(reference)) - gray[..., 0]).max() <= 1.0
            assert chroma(reference) > 5.0
    # Rerun: everything is there, nothing is queued.
    history = get_json(server + "/history")
    again = invoke(["keyframes", clip, "-o", folder, "--shots", clip.parent / "cuts.txt",
                    "--generate", TINT_WORKFLOW, "--server", server, "-q"])
    assert "0 still(s) coloured, 3 already done" in again.stdout
    assert get_json(server + "/history") == history


@pytest.mark.parametrize("entry_id", KEYFRAME_WORKFLOWS)
def test_the_shipped_workflows_fit_the_servers_object_info(server, entry_id, tmp_path) -> None:
    from PIL import Image

    from runner.registry import load_registry
    from runner.workflow import prepare_workflow
    from runner.workflow.spec import all_input_specs

    object_info = get_json(server + "/object_info")
    entry = load_registry().get(entry_id)
    template = entry.template()
    for node_id, node in template.items():
        assert node["class_type"] in object_info, (entry_id, node_id, node["class_type"])
        known = all_input_specs(object_info[node["class_type"]], node["inputs"])
        assert set(node["inputs"]) <= set(known), (entry_id, node_id, set(node["inputs"]) - set(known))
    models = {p.folder: [] for p in entry.parameters.values() if p.type == "model"}
    for parameter in entry.parameters.values():
        if parameter.type == "model":
            models[parameter.folder].append(parameter.default)
    still = tmp_path / "still.png"
    Image.new("L", (64, 48), 128).save(still)
    prepared = prepare_workflow(template, object_info, [], [f"4.image={still}"], lambda path: path.name,
                                models=lambda folder: models.get(folder, []), server=server)
    assert prepared.api["4"]["inputs"]["image"] == "still.png"


@pytest.mark.parametrize("entry_id", KEYFRAME_WORKFLOWS)
def test_preflight_names_the_missing_models_before_queueing(server, picked, entry_id, tmp_path) -> None:
    from comfy_keyframes import copy_folder
    from video_helpers import invoke

    from runner.registry import load_registry

    clip, picked_folder = picked
    folder = copy_folder(picked_folder, tmp_path / "refs")
    queued_before = get_json(server + "/history")
    result = invoke(["keyframes", clip, "-o", folder, "--shots", clip.parent / "cuts.txt",
                     "--generate", entry_id, "--server", server, "-q"], exit_code=3)
    for parameter in load_registry().get(entry_id).parameters.values():
        if parameter.type == "model":
            assert parameter.default in result.stderr, parameter.name
    assert get_json(server + "/history") == queued_before
    queue = get_json(server + "/queue")
    assert queue["queue_running"] == [] and queue["queue_pending"] == []
    assert not list(folder.glob("ref_*.png"))
