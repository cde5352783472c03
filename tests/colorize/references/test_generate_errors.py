"""``--generate`` bad input: one line on stderr, its exit code, nothing written, nothing queued."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from comfy_keyframes import (  # noqa: E402,F401 (fixtures: picked, folder)
    TINT_WORKFLOW,
    FakeComfyServer,
    FakeConfig,
    folder,
    picked,
    tint,
)
from video_helpers import invoke, leftovers  # noqa: E402

from colorize.references import generate  # noqa: E402
from runner.batch import ClientBackend  # noqa: E402
from runner.client import RetryPolicy  # noqa: E402


@pytest.fixture
def server():
    fake = FakeComfyServer(FakeConfig(image_filter=tint)).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that does not answer is given up on after one quick retry, not the default four."""
    monkeypatch.setattr(generate, "ClientBackend", functools.partial(
        ClientBackend, poll_interval=0.05, retry=RetryPolicy(retries=1, base_delay=0.01, max_delay=0.02)))


def generate_args(picked: tuple[Path, Path], folder: Path, workflow: object, url: str, *more: object) -> list:
    clip, _ = picked
    return ["keyframes", clip, "-o", folder, "--shots", clip.parent / "cuts.txt", "--generate", workflow,
            "--server", url, *more]


def references(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("ref_*"))


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def write_workflow(tmp_path: Path, remove: str) -> Path:
    workflow = json.loads(TINT_WORKFLOW.read_text())
    workflow = {node_id: node for node_id, node in workflow.items() if node["class_type"] != remove}
    if remove == "LoadImage":
        workflow["2"]["inputs"]["image"] = ["3", 0]  # scale the solid colour instead
    path = tmp_path / f"without-{remove}.json"
    path.write_text(json.dumps(workflow))
    return path


@pytest.mark.parametrize("remove, words", [("LoadImage", "0 LoadImage nodes"), ("SaveImage", "0 image outputs")])
def test_a_workflow_without_load_image_or_image_output(picked, folder, server, tmp_path, remove, words) -> None:
    result = invoke(generate_args(picked, folder, write_workflow(tmp_path, remove), server.url, "-q"), exit_code=3)
    assert words in one_line(result.stderr)
    assert references(folder) == [] and leftovers(folder) == []
    assert server.posted_prompt_ids() == []


def test_preflight_names_the_missing_models_before_anything_is_queued(picked, folder, server) -> None:
    result = invoke(generate_args(picked, folder, "colorize-keyframe-kontext", server.url, "-q"), exit_code=3)
    assert "flux1-dev-kontext_fp8_scaled.safetensors" in result.stderr
    assert "missing" in result.stderr and "nothing was queued" in result.stderr
    assert server.posted_prompt_ids() == []
    assert not any(path.startswith("/upload") for _, path, _ in server.requests)
    assert references(folder) == []


def test_an_unreachable_server(picked, folder, tmp_path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = invoke(generate_args(picked, folder, TINT_WORKFLOW, dead, "-q"), exit_code=9)
    assert dead.split("//")[1] in one_line(result.stderr)
    assert references(folder) == [] and leftovers(folder) == []


def test_a_generated_picture_that_cannot_be_read(picked, folder, server) -> None:
    server.config.image_filter = lambda png: b"this is not a picture"
    result = invoke(generate_args(picked, folder, TINT_WORKFLOW, server.url, "-q"), exit_code=29)
    line = one_line(result.stderr)
    assert "cannot be read" in line and "3 of 3 stills not coloured" in line
    assert references(folder) == [] and leftovers(folder) == []


def test_regenerate_a_frame_that_is_not_a_keyframe(picked, folder, server) -> None:
    result = invoke(generate_args(picked, folder, TINT_WORKFLOW, server.url, "--regenerate", "0,21", "-q"),
                    exit_code=2)
    assert "--regenerate 21: frame 21 is not a keyframe" in one_line(result.stderr)
    assert server.posted_prompt_ids() == [] and references(folder) == []


def test_generation_options_need_generate(picked, folder) -> None:
    clip, _ = picked
    result = invoke(["keyframes", clip, "-o", folder, "--seed", "3"], exit_code=2)
    assert "--seed needs --generate WORKFLOW" in result.stderr


def test_a_seed_the_workflow_cannot_take(picked, folder, server) -> None:
    result = invoke(generate_args(picked, folder, TINT_WORKFLOW, server.url, "--seed", "5", "-q"), exit_code=3)
    assert "--seed" in one_line(result.stderr) and "no 'seed'" in result.stderr
    assert server.posted_prompt_ids() == []
