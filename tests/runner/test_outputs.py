"""Downloading every output kind with deterministic names and a manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fake_server import FakeComfyServer
from runner import ComfyClient, RetryPolicy
from runner.errors import OutputError
from runner.client.outputs import collect_outputs, list_outputs

FAST = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)

# Images (output + temp), animated WEBP, video, audio, text, and a custom node's "gifs" key.
MULTI = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}, "_meta": {"title": "Source"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo/still"}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}, "_meta": {"title": "Peek"}},
    "4": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["1", 0], "filename_prefix": "demo/anim", "fps": 6.0,
                                                        "lossless": False, "quality": 80, "method": "default"}},
    "5": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}, "_meta": {"title": "Say"}},
    "6": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo/gif_host"}},
}


def run_multi(server: FakeComfyServer) -> tuple[ComfyClient, object]:
    server.config.extra_outputs = {
        "6": {"gifs": [{"filename": "clip_00001.mp4", "subfolder": "vhs", "type": "output", "format": "video/h264-mp4"}],
              "latents": [{"filename": "lat_00001_.latent", "subfolder": "", "type": "output"}],
              "scores": [0.5, 0.7]},
    }
    client = ComfyClient(server.url, poll_interval=0.05, retry=FAST)
    result = client.run(MULTI, timeout=10)
    assert result.ok
    return client, result


def test_every_output_kind_is_saved_with_a_manifest(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    client, result = run_multi(comfy_server)
    with client:
        manifest = collect_outputs(client, result, tmp_path, overrides=[{"node": "2", "input": "x"}])
    by_path = {record["path"]: record for record in manifest.outputs}
    assert sorted(by_path) == [
        "2-image-00-still_00001_.png",
        "3-image-00-ComfyUI_temp_fake_00001_.png",
        "4-animated-00-anim_00001_.webp",
        "5-text-00.txt",
        "6-image-00-gif_host_00001_.png",
        "6-latents-00-lat_00001_.latent",
        "6-video-00-clip_00001.mp4",
    ]
    for record in manifest.outputs:
        data = (tmp_path / record["path"]).read_bytes()
        assert record["size"] == len(data)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        if record["filename"]:
            assert comfy_server.files[(record["type"], record["subfolder"], record["filename"])] == data
    assert by_path["3-image-00-ComfyUI_temp_fake_00001_.png"]["type"] == "temp"
    assert by_path["3-image-00-ComfyUI_temp_fake_00001_.png"]["title"] == "Peek"
    assert by_path["2-image-00-still_00001_.png"]["class_type"] == "SaveImage"
    assert manifest.other_values == [{"node_id": "6", "key": "scores", "index": 0, "value": 0.5},
                                     {"node_id": "6", "key": "scores", "index": 1, "value": 0.7}]
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["prompt_id"] == result.prompt_id
    assert on_disk["server"] == comfy_server.url
    assert on_disk["overrides"] == [{"node": "2", "input": "x"}]
    assert "download_s" in on_disk["timings"]
    assert not list(tmp_path.glob(".*.part"))


def test_video_and_audio_kinds_from_history_shapes() -> None:
    items, others = list_outputs({
        "3": {"images": [{"filename": "video_00001_.mp4", "subfolder": "demo", "type": "output"}], "animated": [True]},
        "5": {"audio": [{"filename": "audio_00001.flac", "subfolder": "demo", "type": "output"}]},
        "10:4": {"text": ["hello"]},
    })
    assert [(i.node_id, i.kind, i.local_name) for i in items] == [
        ("3", "video", "3-video-00-video_00001_.mp4"),
        ("5", "audio", "5-audio-00-audio_00001.flac"),
        ("10:4", "text", "10_4-text-00.txt"),
    ]
    assert others == []


def test_download_retries_a_5xx(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    client, result = run_multi(comfy_server)
    comfy_server.add_fault("/view", "500", times=2)
    with client:
        manifest = collect_outputs(client, result, tmp_path)
    assert len(manifest.outputs) == 7


def test_missing_file_is_an_output_error_without_leftovers(comfy_server: FakeComfyServer, tmp_path: Path) -> None:
    client, result = run_multi(comfy_server)
    comfy_server.add_fault("/view", "status", status=404, times=-1)
    with client, pytest.raises(OutputError, match="could not download"):
        collect_outputs(client, result, tmp_path)
    assert not list(tmp_path.glob(".*.part"))
    assert not (tmp_path / "manifest.json").exists()
