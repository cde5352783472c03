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


def test_registry_entries_and_ui_files_match_the_api_templates():
    registry = load_registry()
    info = colorize_object_info()
    for workflow_id, stem in (("colorize-video", "colorize_video"), ("colorize-frames", "colorize_frames")):
        entry = registry.get(workflow_id)
        assert check_entry(entry) == []
        assert {"video", "reference", "checkpoint", "memory_mode", "precision", "max_side"} <= set(entry.parameters)
        assert entry.parameters["checkpoint"].folder == "colormnet"
        api_from_ui, kind = to_api(load_workflow(WORKFLOWS / f"{stem}.ui.json"), info)
        assert kind == "ui"
        template = json.loads((WORKFLOWS / f"{stem}.json").read_text())
        assert {k: v["inputs"] for k, v in api_from_ui.items()} == {k: v["inputs"] for k, v in template.items()}
