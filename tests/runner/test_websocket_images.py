"""Images that come as binary websocket frames: SaveImageWebsocket outputs are saved, sampler previews only on request."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from fake_server import FakeComfyServer, FakeConfig
from runner import ComfyClient, RetryPolicy
from runner.cli import main
from runner.client.messages import parse_message
from runner.client.tracker import RunTracker
from runner.events import ImageOutput, Preview
from runner.client.outputs import collect_outputs

WS_WORKFLOW = Path(__file__).parent / "fixtures" / "roundtrip" / "06_ws_image.roundtrip.api.json"  # batch of 2


def invoke(server: FakeComfyServer, *args: str):
    env = {"COMFYUI_API_URL": server.url, "COMFYUI_POLL_INTERVAL": "0.05", "COMFYUI_API_KEY": None, "COMFYUI_TIMEOUT": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def result_line(stdout: str) -> dict[str, Any]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()][-1]


def preview_and_save_workflow(tmp_path: Path, color: int) -> Path:
    """EmptyImage (2 images) -> a node with 3 progress steps (previews) -> SaveImageWebsocket."""
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0], "steps": 3}},
        "3": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}},
    }
    path = tmp_path / f"workflow-{color}.json"  # another colour: nothing is cached from the run before
    path.write_text(json.dumps(workflow))
    return path


@pytest.mark.parametrize("metadata", [True, False], ids=["event4-with-metadata", "event1-older-server"])
def test_websocket_images_are_saved_with_the_outputs(
    make_comfy_server: Callable[..., FakeComfyServer], tmp_path: Path, metadata: bool
) -> None:
    server = make_comfy_server(FakeConfig(feature_flags=metadata))
    out = tmp_path / "out"
    result = invoke(server, str(WS_WORKFLOW), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    final = result_line(result.stdout)
    prompt_id = final["prompt_id"]
    saved = [out / "2-image-00.png", out / "2-image-01.png"]
    # The files hold the frames' images, in the order the server sent them.
    assert [path.read_bytes().endswith(f"websocket {prompt_id} 2 {i}".encode()) for i, path in enumerate(saved)] == [True, True]
    assert sorted(p.name for p in out.iterdir()) == ["2-image-00.png", "2-image-01.png", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(r["node_id"], r["class_type"], r["key"], r["index"], r["path"]) for r in manifest["outputs"]] == [
        ("2", "SaveImageWebsocket", "websocket", 0, "2-image-00.png"),
        ("2", "SaveImageWebsocket", "websocket", 1, "2-image-01.png"),
    ]
    assert [r["sha256"] for r in manifest["outputs"]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in saved]
    assert final["outputs"] == manifest["outputs"] and "previews" not in final


def test_previews_are_saved_only_with_the_flag(make_comfy_server: Callable[..., FakeComfyServer], tmp_path: Path) -> None:
    server = make_comfy_server(FakeConfig(preview_frames=True, preview_format=1))
    plain = invoke(server, str(preview_and_save_workflow(tmp_path, 0)), "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["3-image-00.png", "3-image-01.png", "manifest.json"]
    assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["previews"] == []

    asked = invoke(server, str(preview_and_save_workflow(tmp_path, 1)), "--out", str(tmp_path / "asked"), "--save-previews",
                   "--json")
    assert asked.exit_code == 0, asked.output
    previews = tmp_path / "asked" / "previews"
    names = ["2-preview-000.jpg", "2-preview-001.jpg", "2-preview-002.jpg"]
    assert sorted(p.name for p in previews.iterdir()) == names
    assert [(previews / n).read_bytes().endswith(f"preview 2 {i + 1}".encode()) for i, n in enumerate(names)] == [True] * 3
    manifest = json.loads((tmp_path / "asked" / "manifest.json").read_text())
    assert [r["path"] for r in manifest["previews"]] == [f"previews/{n}" for n in names]
    assert [r["path"] for r in manifest["outputs"]] == ["3-image-00.png", "3-image-01.png"]  # previews are not outputs
    assert result_line(asked.stdout)["previews"] == manifest["previews"]


def test_python_api_keeps_websocket_images_and_collects_them(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    workflow = json.loads(WS_WORKFLOW.read_text())
    with ComfyClient(comfy_server.url, poll_interval=0.05, retry=RetryPolicy(retries=2, base_delay=0.01)) as client:
        result = client.run(workflow, timeout=10)  # /object_info never read: SaveImageWebsocket is known anyway
        assert result.ok and result.outputs == {} and result.has_outputs
        assert [(image.node_id, image.index, image.image_format) for image in result.images] == [("2", 0, "png"), ("2", 1, "png")]
        manifest = collect_outputs(client, result, tmp_path)
    assert [r["path"] for r in manifest.outputs] == ["2-image-00.png", "2-image-01.png"]
    assert (tmp_path / "2-image-01.png").read_bytes() == result.images[1].data


def _image_frame(fmt: int, payload: bytes) -> bytes:
    return struct.pack(">II", 1, fmt) + payload


def _meta_frame(node: str, prompt_id: str, payload: bytes) -> bytes:
    meta = json.dumps({"node_id": node, "prompt_id": prompt_id, "image_type": "image/jpeg"}).encode()
    return struct.pack(">II", 4, len(meta)) + meta + payload


def test_tracker_tells_outputs_from_previews_by_the_node_they_belong_to() -> None:
    graph = {"5": {"class_type": "KSampler", "inputs": {}}, "9": {"class_type": "SaveImageWebsocket", "inputs": {}}}
    tracker = RunTracker("p", graph)

    def feed(message: Any) -> list[Any]:
        parsed = parse_message(message)
        assert parsed is not None
        return tracker.feed(parsed)

    assert feed(_image_frame(2, b"before the run")) == []  # event 1 names no prompt: not ours yet
    feed(json.dumps({"type": "execution_start", "data": {"prompt_id": "p"}}))
    feed(json.dumps({"type": "executing", "data": {"node": "5", "prompt_id": "p"}}))
    sampler = feed(_image_frame(1, b"step"))
    feed(json.dumps({"type": "executing", "data": {"node": "9", "prompt_id": "p"}}))
    saved = feed(_image_frame(2, b"first")) + feed(_image_frame(2, b"second"))
    late_preview = feed(_meta_frame("5", "p", b"named"))  # event 4 names its node, whatever runs now
    assert [type(e) for e in sampler] == [Preview] and sampler[0].image_format == "jpeg" and sampler[0].node_id == "5"
    assert [(type(e), e.index, e.data) for e in saved] == [(ImageOutput, 0, b"first"), (ImageOutput, 1, b"second")]
    assert [type(e) for e in late_preview] == [Preview] and late_preview[0].node_id == "5"
    assert [image.data for image in tracker.images] == [b"first", b"second"]


def test_output_node_classes_come_from_object_info(comfy_server: FakeComfyServer) -> None:
    with ComfyClient(comfy_server.url) as client:
        assert "KSampler" not in client.output_classes
        client.object_info()
        assert {"SaveImageWebsocket", "SaveImage"} <= client.output_classes and "KSampler" not in client.output_classes


def test_websocket_images_lost_with_the_socket_are_reported(make_comfy_server: Callable[..., FakeComfyServer],
                                                            tmp_path: Path) -> None:
    server = make_comfy_server(FakeConfig(ws_accept=False))  # the run is followed by polling alone
    human = invoke(server, str(WS_WORKFLOW), "--out", str(tmp_path / "a"))
    assert human.exit_code == 0, human.output
    assert "warning: node 2 (SaveImageWebsocket) sends its images over the websocket, but none arrived" in human.stderr
    as_json = invoke(server, str(WS_WORKFLOW), "--out", str(tmp_path / "b"), "--json")
    assert result_line(as_json.stdout)["warnings"][0].startswith("node 2 (SaveImageWebsocket)")
    received = invoke(make_comfy_server(), str(WS_WORKFLOW), "--out", str(tmp_path / "c"), "--json")
    assert "warnings" not in result_line(received.stdout)
