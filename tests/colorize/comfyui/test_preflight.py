"""comfy-run's preflight for the colorize workflows, against the fake ComfyUI server.

Without the node pack the run stops before anything is uploaded or queued (exit 3) and says how to
install it; a checkpoint missing from models/colormnet is reported before queueing too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runner"))

from fake_server import FakeComfyServer, FakeConfig, default_object_info  # noqa: E402

from runner.cli import main  # noqa: E402
from runner.registry import check_entry, load_registry  # noqa: E402
from runner.workflow import to_api, load_workflow  # noqa: E402

HERE = Path(__file__).parent
WORKFLOWS = HERE.parents[2] / "runner" / "workflows"
INSTALL_LINE = "install them with: colorize comfyui install COMFYUI_DIR"


def colorize_object_info() -> dict:
    info = default_object_info()
    info.update(json.loads((HERE / "object_info_colorize.json").read_text())["object_info"])
    return info


@pytest.fixture
def server_factory():
    servers: list[FakeComfyServer] = []

    def make(object_info: dict | None = None, models: dict | None = None) -> FakeComfyServer:
        server = FakeComfyServer(FakeConfig(models=models or {}), object_info=object_info).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def clip(tmp_path) -> tuple[Path, Path]:
    video, reference = tmp_path / "in.mp4", tmp_path / "ref.png"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 not decoded by the fake server")
    reference.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    return video, reference


def queued_prompt(server: FakeComfyServer, prompt_id: str) -> dict:
    """The prompt the server got, from its queue or its history."""
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/queue", timeout=10) as reply:
        queue = json.loads(reply.read())
    for item in queue["queue_running"] + queue["queue_pending"]:
        if item[1] == prompt_id:
            return item[2]
    with urllib.request.urlopen(f"{server.url}/history/{prompt_id}", timeout=10) as reply:
        return json.loads(reply.read())[prompt_id]["prompt"][2]


def comfy_run(server: FakeComfyServer, *args: str):
    env = {"COMFYUI_API_URL": None, "COMFYUI_POLL_INTERVAL": "0.05", "COMFYUI_API_KEY": None, "COMFYUI_TIMEOUT": None}
    return CliRunner().invoke(main, ["run", *args, "--server", server.url], env=env, catch_exceptions=False)


@pytest.mark.parametrize("workflow_id", ["colorize-video", "colorize-frames"])
def test_server_without_the_pack_exits_3_and_queues_nothing(server_factory, clip, tmp_path, workflow_id):
    server = server_factory()
    video, reference = clip
    result = comfy_run(server, workflow_id, "--param", f"video={video}", "--param", f"reference={reference}",
                       "--param", "checkpoint=colormnet.safetensors", "--out", str(tmp_path / "out"))
    assert result.exit_code == 3, result.output
    assert f"the colorize nodes are not installed on {server.url}; {INSTALL_LINE}" in result.output
    assert "ColorizeLoadColorMNet" not in result.output      # one line about the pack, not one per node
    assert server.posted_prompt_ids() == []
    assert not [key for key in server.files if key[0] == "input"]   # nothing uploaded either


def test_missing_checkpoint_is_reported_before_queueing(server_factory, clip, tmp_path):
    server = server_factory(colorize_object_info(), models={"colormnet": ["colormnet.safetensors"]})
    video, reference = clip
    result = comfy_run(server, "colorize-video", "--param", f"video={video}", "--param", f"reference={reference}",
                       "--param", "checkpoint=other.safetensors", "--out", str(tmp_path / "out"))
    assert result.exit_code == 3, result.output
    assert "model file 'other.safetensors' is missing on models/colormnet" in result.output
    assert server.posted_prompt_ids() == []


def test_with_the_pack_and_checkpoint_the_prompt_is_queued(server_factory, clip, tmp_path):
    server = server_factory(colorize_object_info(), models={"colormnet": ["colormnet.safetensors"]})
    video, reference = clip
    result = comfy_run(server, "colorize-video", "--param", f"video={video}", "--param", f"reference={reference}",
                       "--param", "checkpoint=colormnet.safetensors", "--param", "max_side=256",
                       "--param", "memory_mode=low", "--no-wait")
    assert result.exit_code == 0, result.output
    assert len(server.posted_prompt_ids()) == 1
    uploaded = sorted(name for kind, _, name in server.files if kind == "input")
    assert uploaded == ["in.mp4", "ref.png"]


TEMPLATES = {"colorize-video": "colorize_video", "colorize-frames": "colorize_frames",
             "colorize-video-keyframes": "colorize_video_keyframes", "colorize-film": "colorize_film"}


@pytest.mark.parametrize("workflow_id", sorted(TEMPLATES))
def test_registry_entries_and_ui_files_match_the_api_templates(workflow_id):
    registry = load_registry()
    info = colorize_object_info()
    stem = TEMPLATES[workflow_id]
    entry = registry.get(workflow_id)
    assert check_entry(entry) == []
    assert {"video", "checkpoint"} <= set(entry.parameters)
    assert entry.parameters["checkpoint"].folder == "colormnet"
    api_from_ui, kind = to_api(load_workflow(WORKFLOWS / f"{stem}.ui.json"), info)
    assert kind == "ui"
    template = json.loads((WORKFLOWS / f"{stem}.json").read_text())
    assert {k: v["inputs"] for k, v in api_from_ui.items()} == {k: v["inputs"] for k, v in template.items()}


def test_ui_file_saved_before_the_footage_inputs_still_converts():
    # The colorize-video UI file as shipped before keyframes and shots existed (no shots widget).
    ui = json.loads((WORKFLOWS / "colorize_video.ui.json").read_text())
    node = next(n for n in ui["nodes"] if n["type"] == "ColorizeVideo")
    node["widgets_values"] = node["widgets_values"][:4]        # reference_is_first_frame .. crf
    api, _ = to_api(ui, colorize_object_info())
    colorize = next(v for v in api.values() if v["class_type"] == "ColorizeVideo")
    assert "shots" not in colorize["inputs"] and colorize["inputs"]["crf"] == 18


def test_keyframes_folder_is_uploaded_into_one_input_subfolder(server_factory, clip, tmp_path):
    server = server_factory(colorize_object_info(), models={"colormnet": ["colormnet.safetensors"]})
    video, reference = clip
    refs = tmp_path / "refs"
    refs.mkdir()
    for frame in (12, 40):
        (refs / f"ref_{frame:06d}.png").write_bytes(b"\x89PNG\r\n\x1a\n fake " + bytes([frame]))
    (refs / "keyframes.json").write_text("{}")                  # not an image: not uploaded
    args = ["colorize-video-keyframes", "--param", f"video={video}", "--param", f"reference={reference}",
            "--param", f"keyframes={refs}", "--param", "shots=12,40", "--param", "crf=0", "--no-wait"]
    result = comfy_run(server, *args)
    assert result.exit_code == 0, result.output
    folders = {sub for kind, sub, name in server.files if kind == "input" and name.startswith("ref_")}
    assert len(folders) == 1 and next(iter(folders)).startswith("refs-")
    folder = next(iter(folders))
    assert sorted(name for kind, sub, name in server.files if sub == folder) == ["ref_000012.png", "ref_000040.png"]
    prompt = queued_prompt(server, server.posted_prompt_ids()[-1])
    assert prompt["4"]["inputs"]["folder"] == folder and prompt["5"]["inputs"]["shots"] == "12,40"
    # The same files again: the same subfolder, nothing stored twice.
    assert comfy_run(server, *args).exit_code == 0
    assert {sub for kind, sub, name in server.files if name.startswith("ref_")} == {folder}


def test_a_server_with_an_older_pack_is_told_to_upgrade(server_factory, clip, tmp_path):
    info = colorize_object_info()
    for name in ("ColorizeKeyframes", "ColorizeLoadKeyframes", "ColorizePickKeyframes", "ColorizeKeepLuminance"):
        del info[name]                             # the pack as it was before keyframes existed
    server = server_factory(info, models={"colormnet": ["colormnet.safetensors"]})
    video, reference = clip
    result = comfy_run(server, "colorize-video-keyframes", "--param", f"video={video}",
                       "--param", f"reference={reference}", "--out", str(tmp_path / "out"))
    assert result.exit_code == 3, result.output
    assert (f"the colorize nodes on {server.url} are older than this workflow needs (no ColorizeLoadKeyframes); "
            "upgrade the package") in result.output
    assert server.posted_prompt_ids() == []
