"""The colorize nodes in a real ComfyUI server, driven by ``comfy-run``.

Runs only when ``COMFYUI_DIR`` (a ComfyUI checkout, 0.3.56 or newer) and ``COMFYUI_PYTHON`` (a
Python that runs it, with this package installed) are set. The test installs the pack, starts the
server on 127.0.0.1 with its own input/output/temp folders and the synthetic checkpoint registered
through an extra model paths file (the checkout's own models folder is left alone), runs the
``colorize-video`` registry workflow through ``comfy-run`` and compares the result with the
``colorize`` command on the same clip and weights; then it interrupts a run from the client and
checks that a prompt queued behind it still completes. The pack is uninstalled afterwards unless it
was installed before.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_server import (  # noqa: E402
    CHECKPOINT,
    COMFYUI_PYTHON,
    RUN_TIMEOUT_S,
    comfy_run,
    get_json,
    needs_comfyui,
    start_server,
)

pytestmark = needs_comfyui


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from start_server(tmp_path_factory)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from PIL import Image

    from comfy_clips import colourful, moving_gray
    from video_helpers import write_video

    folder = tmp_path_factory.mktemp("clip")
    short = write_video(folder / "short.mp4", moving_gray(8), audio_codec="aac")
    long = write_video(folder / "long.mp4", moving_gray(120, seed=1), audio_codec="aac")
    Image.fromarray(colourful((48, 80))).save(folder / "ref.png")
    return {"short": short, "long": long, "reference": folder / "ref.png", "folder": folder}


def test_pack_is_loaded_with_the_checkpoint(server):
    info = get_json(server["url"] + "/object_info/ColorizeLoadColorMNet")["ColorizeLoadColorMNet"]
    assert info["category"] == "colorize"
    assert CHECKPOINT in info["input"]["required"]["checkpoint"][1]["options"]
    assert get_json(server["url"] + "/object_info/ColorizeVideo")["ColorizeVideo"]["output"] == ["VIDEO", "STRING", "IMAGE"]


def test_colorize_video_through_comfy_run_equals_the_cli(server, clip, tmp_path):
    # Both sides lossless (crf 0): x264's threaded lossy encoding of the same frames differs from
    # run to run, so only lossless output compares the colorized frames themselves.
    import torch

    from colorize.color import rgb_to_normalized_lab
    from video_helpers import read_video

    out = tmp_path / "out"
    done = subprocess.run(
        comfy_run(server["url"], "colorize-video", "--param", f"video={clip['short']}",
                  "--param", f"reference={clip['reference']}", "--param", f"checkpoint={CHECKPOINT}",
                  "--param", "precision=fp32", "--param", "crf=0", "--out", str(out)),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == 1, sorted(p.name for p in out.iterdir())
    cli_out = tmp_path / "cli.mp4"
    # The CLI in the server's own Python: another torch build rounds a few pixels differently
    # (up to 2 levels here), which is not what this test is about.
    cli = subprocess.run([COMFYUI_PYTHON, "-m", "colorize", str(clip["short"]), "--ref", str(clip["reference"]),
                          "-o", str(cli_out), "--weights", str(server["weights"]), "--device", "cpu", "--fp32", "-q",
                          "--crf", "0"],
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert cli.returncode == 0, cli.stderr
    node, reference = read_video(videos[0]), read_video(cli_out)
    assert len(node.frames) == len(reference.frames) == 8
    rgb_max = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(node.frames, reference.frames))
    ab_max = max(
        float((rgb_to_normalized_lab(torch.from_numpy(a).permute(2, 0, 1).contiguous())[1:]
               - rgb_to_normalized_lab(torch.from_numpy(b).permute(2, 0, 1).contiguous())[1:]).abs().max())
        for a, b in zip(node.frames, reference.frames))
    print(f"comfyui vs cli: RGB max {rgb_max}, ab max {ab_max:.2e}")
    assert rgb_max <= 2
    assert ab_max <= 1e-3
    assert node.audio_codecs == ["aac"]
    assert node.times == reference.times


def test_interrupt_from_the_client_stops_and_leaves_other_prompts_alone(server, clip, tmp_path):
    url = server["url"]
    # A second prompt waits behind the long one (queued with --no-wait).
    runner = subprocess.Popen(
        comfy_run(url, "colorize-video", "--param", f"video={clip['long']}", "--param", f"reference={clip['reference']}",
                  "--param", f"checkpoint={CHECKPOINT}", "--param", "precision=fp32", "--out", str(tmp_path / "long")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not get_json(url + "/queue")["queue_running"]:
        assert runner.poll() is None, runner.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.5)
    queued = subprocess.run(
        comfy_run(url, "colorize-video", "--param", f"video={clip['short']}", "--param", f"reference={clip['reference']}",
                  "--param", f"checkpoint={CHECKPOINT}", "--param", "precision=fp32", "--param", "memory_mode=low",
                  "--no-wait", "--json"),
        capture_output=True, text=True, timeout=120)
    assert queued.returncode == 0, queued.stdout + queued.stderr
    other_id = next(json.loads(line)["prompt_id"] for line in queued.stdout.splitlines()
                    if line.strip().startswith("{") and "prompt_id" in line)
    # Wait until the long run is colorizing (a progress step has been reported), then Ctrl-C the client.
    time.sleep(5)
    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 130, output
    history = {}
    while time.monotonic() < deadline:
        history = get_json(f"{url}/history/{other_id}")
        if other_id in history and history[other_id]["status"].get("completed") is not None and (
                history[other_id]["status"]["status_str"] in ("success", "error")):
            break
        time.sleep(1)
    assert history[other_id]["status"]["status_str"] == "success", history.get(other_id, {}).get("status")
    interrupted = [entry for entry in get_json(f"{url}/history").values()
                   if any(m[0] == "execution_interrupted" for m in entry["status"].get("messages", []))]
    assert interrupted, "the long prompt was not interrupted on the server"


def test_bad_input_through_the_server_gives_clear_messages_and_the_server_stays_up(server, clip, tmp_path):
    from PIL import Image

    from comfy_clips import audio_only, moving_gray
    from video_helpers import read_video, write_video

    url, checkpoint = server["url"], ("--param", f"checkpoint={CHECKPOINT}", "--param", "precision=fp32")

    def run(workflow: str, video: Path, reference: Path, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run(comfy_run(url, workflow, "--param", f"video={video}", "--param",
                                        f"reference={reference}", *checkpoint, "--out", str(out)),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S)

    # A gray reference of another size and an RGBA reference: resized / made RGB, all frames out.
    gray, rgba = tmp_path / "gray.png", tmp_path / "rgba.png"
    Image.open(clip["reference"]).convert("L").resize((33, 21)).save(gray)
    Image.open(clip["reference"]).convert("RGBA").save(rgba)
    for reference in (gray, rgba):
        done = run("colorize-video", clip["short"], reference, tmp_path / reference.stem)
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(read_video(next((tmp_path / reference.stem).glob("*.mp4"))).frames) == 8

    # A VIDEO without frames: our one line reaches the client from execution_error.
    failed = run("colorize-video", audio_only(tmp_path / "audio.m4a"), clip["reference"], tmp_path / "none")
    assert failed.returncode != 0
    assert "Colorize Video: the VIDEO has no frames to colorize" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr

    # A batch of one frame through the IMAGE path.
    one = write_video(tmp_path / "one.mp4", moving_gray(1))
    done = run("colorize-frames", one, clip["reference"], tmp_path / "one")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((tmp_path / "one").glob("*.png"))) == 1

    assert get_json(url + "/system_stats")["system"]["comfyui_version"]   # still serving


def test_comfy_run_batch_colorizes_several_videos_with_their_audio(server, clip, tmp_path):
    from video_helpers import read_video

    params = tmp_path / "films.jsonl"
    params.write_text("".join(
        json.dumps({"video": str(clip["short"]), "reference": str(clip["reference"]), "checkpoint": CHECKPOINT,
                    "precision": "fp32", "memory_mode": mode}) + "\n"
        for mode in ("low", "balanced")))      # two different jobs (identical lines are one job)
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "runner.cli", "batch", "colorize-video", "--params", str(params),
                           "--server", server["url"], "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    videos = sorted(out.glob("*/*.mp4"))
    assert len(videos) == 2
    for video in videos:
        decoded = read_video(video)
        assert len(decoded.frames) == 8 and decoded.audio_codecs == ["aac"]
    assert json.loads((out / "batch_manifest.json").read_text())
