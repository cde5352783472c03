"""``colorize keyframes ... --generate WORKFLOW --server URL`` against the ComfyUI stand-in.

The stand-in is ``tests/runner/fake_server.py`` (real HTTP and websocket on loopback); the
workflow is ``keyframe_tint.api.json`` (core nodes, no model), which the stand-in runs as
:func:`comfy_keyframes.tint`: a coloured picture 1.5 times the still's size.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from comfy_keyframes import (  # noqa: E402,F401 (fixtures: picked, folder)
    KEYFRAMES,
    STILLS,
    TINT_WORKFLOW,
    FakeComfyServer,
    FakeConfig,
    chroma,
    copy_folder,
    folder,
    gray_level,
    lightness,
    picked,
    read_rgb,
    tint,
    tint_array,
)
from video_helpers import invoke, leftovers  # noqa: E402

from colorize.references import generate  # noqa: E402
from colorize.references.generate import GenerateSettings, GenerationError, generate_references  # noqa: E402
from colorize.references.store import read_keyframes  # noqa: E402
from runner.batch import ClientBackend  # noqa: E402
from runner.client import RetryPolicy  # noqa: E402

FAST_RETRY = RetryPolicy(retries=1, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def servers():
    started: list[FakeComfyServer] = []

    def start(**config) -> FakeComfyServer:
        server = FakeComfyServer(FakeConfig(image_filter=tint, **config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def fast_backend() -> ClientBackend:
    return ClientBackend(poll_interval=0.05, retry=FAST_RETRY)


def settings(*urls: str, **options) -> GenerateSettings:
    return GenerateSettings(workflow=str(TINT_WORKFLOW), servers=tuple(urls), **options)


def groups_of(folder: Path) -> list[dict]:
    return read_keyframes(folder)["groups"]


def inode(path: Path) -> int:
    return path.stat().st_ino


def test_every_reference_at_the_frame_size_with_the_stills_luminance(picked, folder, servers) -> None:
    clip, _ = picked
    server = servers()
    result = invoke(["keyframes", clip, "-o", folder, "--shots", clip.parent / "cuts.txt",
                     "--generate", TINT_WORKFLOW, "--server", server.url])
    assert "3 still(s) coloured, 0 already done: 4 colour reference(s) written" in result.stdout
    assert "still 3/3 coloured" in result.stderr  # progress: stills done of total
    assert len(server.executed_prompts) == 3
    for still, frames in STILLS.items():
        gray = read_rgb(folder / "gray" / f"ref_{still:06d}.png")
        for frame in frames:
            reference = read_rgb(folder / f"ref_{frame:06d}.png")
            assert reference.shape == (48, 64, 3)  # the frame size, not the generated 96x72
            levels = gray_level(lightness(reference))
            assert np.abs(levels - gray[..., 0].astype(np.float64)).max() <= 1.0
            assert chroma(reference) > 5.0  # the generated colour is there
    assert np.array_equal(read_rgb(folder / "ref_000000.png"), read_rgb(folder / "ref_000054.png"))
    page = (folder / "review.html").read_text()
    assert "4 of 4" in page or 'src="ref_000020.png"' in page
    assert f"--generate {TINT_WORKFLOW}" in page and f"--server {server.url}" in page
    assert leftovers(folder) == []


def test_keep_generated_luma_keeps_the_generated_picture(folder, servers) -> None:
    from PIL import Image

    server = servers()
    generate_references(folder, groups_of(folder), settings(server.url, keep_generated_luma=True),
                        backend=fast_backend())
    gray = read_rgb(folder / "gray" / "ref_000020.png")
    expected = np.asarray(Image.fromarray(tint_array(gray)).resize((64, 48), Image.Resampling.LANCZOS))
    reference = read_rgb(folder / "ref_000020.png")
    assert reference.shape == (48, 64, 3)
    assert np.abs(reference.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(gray_level(lightness(reference)) - gray[..., 0]).max() > 5  # its own brightness


def test_existing_references_are_kept_and_regenerate_redoes_the_named_ones(folder, servers) -> None:
    server = servers()
    first = generate_references(folder, groups_of(folder), settings(server.url), backend=fast_backend())
    assert (first.total, first.skipped, first.generated) == (3, 0, [0, 20, 36])
    before = {frame: inode(folder / f"ref_{frame:06d}.png") for frame in KEYFRAMES}

    again = generate_references(folder, groups_of(folder), settings(server.url), backend=fast_backend())
    assert (again.skipped, again.generated, again.written) == (3, [], [])
    assert len(server.posted_prompt_ids()) == 3  # nothing queued the second time

    # Regenerating frame 54 colours its group's still (frame 0's) and rewrites only ref_000054.
    redo = generate_references(folder, groups_of(folder), settings(server.url, regenerate=frozenset({54})),
                               backend=fast_backend())
    assert redo.generated == [0] and redo.written == [folder / "ref_000054.png"]
    assert len(server.posted_prompt_ids()) == 4
    after = {frame: inode(folder / f"ref_{frame:06d}.png") for frame in KEYFRAMES}
    assert [frame for frame in KEYFRAMES if after[frame] != before[frame]] == [54]

    # A deleted reference is made again, alone.
    (folder / "ref_000036.png").unlink()
    filled = generate_references(folder, groups_of(folder), settings(server.url), backend=fast_backend())
    assert filled.generated == [36] and (folder / "ref_000036.png").is_file()


def test_an_interrupted_run_continues_with_the_rest(folder, servers) -> None:
    first_server = servers()

    def stop_after_first(done: int, total: int, job) -> None:
        if done == 1:  # the server goes away after one still: open connections break too
            first_server.add_fault("/", "drop", times=-1)
            first_server.stop()

    with pytest.raises(GenerationError) as caught:
        generate_references(folder, groups_of(folder), settings(first_server.url, concurrency=1),
                            backend=fast_backend(), on_progress=stop_after_first)
    assert caught.value.exit_code == 9
    message = str(caught.value)
    assert "\n" not in message and "2 of 3 stills not coloured" in message and "run again" in message
    kept = sorted(p.name for p in folder.glob("ref_*.png"))
    assert kept == ["ref_000000.png", "ref_000054.png"]  # the first still's group, complete
    kept_inodes = {name: inode(folder / name) for name in kept}
    assert leftovers(folder) == []

    second_server = servers()
    rest = generate_references(folder, groups_of(folder), settings(second_server.url), backend=fast_backend())
    assert rest.generated == [20, 36] and rest.skipped == 1
    assert len(second_server.posted_prompt_ids()) == 2  # only the rest
    assert {name: inode(folder / name) for name in kept} == kept_inodes
    assert sorted(p.name for p in folder.glob("ref_*.png")) == [f"ref_{f:06d}.png" for f in KEYFRAMES]


def test_stills_are_spread_over_several_servers(folder, servers) -> None:
    one, two = servers(node_delay=0.05), servers(node_delay=0.05)
    result = generate_references(folder, groups_of(folder), settings(one.url, two.url), backend=fast_backend())
    assert result.generated == [0, 20, 36]
    assert len(one.executed_prompts) >= 1 and len(two.executed_prompts) >= 1
    assert len(one.executed_prompts) + len(two.executed_prompts) == 3


def test_a_registry_workflow_takes_prompt_and_seed(folder, servers) -> None:
    server = servers(models={"diffusion_models": ["qwen_image_edit_fp8_e4m3fn.safetensors"],
                             "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
                             "vae": ["qwen_image_vae.safetensors"]})
    options = GenerateSettings(workflow="colorize-keyframe-qwen", servers=(server.url,),
                               prompt="paint it in autumn colours", seed=7)
    result = generate_references(folder, groups_of(folder), options, backend=fast_backend())
    assert result.generated == [0, 20, 36]
    prompts = [entry["prompt"][2] for entry in server.history.values()]
    assert {p["6"]["inputs"]["prompt"] for p in prompts} == {"paint it in autumn colours"}
    assert {p["11"]["inputs"]["seed"] for p in prompts} == {7}
    assert {p["4"]["inputs"]["image"] for p in prompts} == {"ref_000000.png", "ref_000020.png", "ref_000036.png"}


def test_the_command_line_uses_the_same_path(picked, folder, servers, monkeypatch) -> None:
    """--regenerate and --keep-generated-luma reach the generator from the command line."""
    clip, _ = picked
    server = servers()
    monkeypatch.setattr(generate, "ClientBackend", functools.partial(ClientBackend, retry=FAST_RETRY))
    shots = ["--shots", clip.parent / "cuts.txt"]
    invoke(["keyframes", clip, "-o", folder, *shots, "--generate", TINT_WORKFLOW, "--server", server.url, "-q"])
    before = inode(folder / "ref_000020.png")
    result = invoke(["keyframes", clip, "-o", folder, *shots, "--generate", TINT_WORKFLOW,
                     "--server", server.url, "--regenerate", "20", "--keep-generated-luma", "-q"])
    assert "1 still(s) coloured, 2 already done: 1 colour reference(s) written" in result.stdout
    assert inode(folder / "ref_000020.png") != before
    assert len(server.posted_prompt_ids()) == 4


def test_a_web_ui_save_of_the_workflow_works_the_same(folder, servers, tmp_path) -> None:
    server = servers()
    ui_file = TINT_WORKFLOW.with_name("keyframe_tint.ui.json")  # the same graph as the web UI saves it
    options = GenerateSettings(workflow=str(ui_file), servers=(server.url,))
    assert generate_references(folder, groups_of(folder), options, backend=fast_backend()).generated == [0, 20, 36]
    api_folder = copy_folder(folder, tmp_path / "api")
    for path in api_folder.glob("ref_*.png"):
        path.unlink()
    generate_references(api_folder, groups_of(api_folder), settings(server.url), backend=fast_backend())
    for frame in KEYFRAMES:
        name = f"ref_{frame:06d}.png"
        assert np.array_equal(read_rgb(folder / name), read_rgb(api_folder / name))
