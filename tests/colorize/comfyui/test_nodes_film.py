"""Keyframes, shots and the report on the nodes, with the real engine and synthetic weights:
the same frames as the engine given the same references and cuts, and the same report as
``colorize --ref-dir --shots auto --report``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_clips import as_image, colourful
from video_helpers import invoke, read_video, write_video

SMALL = (32, 48)


def two_shots(first: int, second: int) -> list[np.ndarray]:
    """A slowly panning ramp, then a hard cut to a dark checkerboard (PySceneDetect finds it)."""
    height, width = SMALL
    y, x = np.mgrid[0:height, 0:width]
    ramp = (x * 255 // width + y).clip(0, 255).astype(np.uint8)
    board = ((((x // 8) + (y // 8)) % 2) * 60 + 20).astype(np.uint8)
    pan = [np.roll(ramp, t // 2, axis=1) for t in range(first)]
    later = [np.roll(board, t, axis=1) for t in range(second)]
    return [np.repeat(frame[..., None], 3, axis=2) for frame in pan + later]


def test_keyframes_and_cuts_on_the_frames_node_equal_the_engine(loaded, synthetic_weights):
    from colorize.engine import EngineConfig, VideoGuide, build_colorizer

    _, nodes, model = loaded
    frames = two_shots(4, 3)
    main, key2, key4 = colourful(SMALL), colourful(SMALL)[::-1].copy(), colourful(SMALL)[:, ::-1].copy()
    keyframes = nodes.ColorizeKeyframes.execute(images=as_image(key2, key4), frames="2, 4").args[0]
    out = nodes.ColorizeFrames.execute(model=model, images=as_image(*frames), reference=as_image(main),
                                       keyframes=keyframes, shots="4", reference_is_first_frame=False,
                                       memory_mode="balanced", max_side=0).args
    engine = build_colorizer(EngineConfig(weights=synthetic_weights, device="cpu", precision="fp32"))
    guide = VideoGuide(keyframes={2: key2, 4: key4}, is_cut=lambda t: t == 4)
    expected = list(engine.colorize(iter(frames), main, guide=guide))
    got = (out[0].numpy() * 255).round().astype(np.uint8)
    for index, want in enumerate(expected):
        assert np.array_equal(got[index], want), f"frame {index} differs from the engine's"
    plain = list(build_colorizer(EngineConfig(weights=synthetic_weights, device="cpu", precision="fp32"))
                 .colorize(iter(frames), main))
    assert not np.array_equal(plain[3], expected[3])   # the keyframe did change what follows it
    report = json.loads(out[1])
    assert [s["start"] for s in report["shots"]] == [0, 4]
    assert [f["reference"] for f in report["frames"]] == [
        "reference", "reference", "keyframe 2 (batch image 0)", "keyframe 2 (batch image 0)",
        "keyframe 4 (batch image 1)", "keyframe 4 (batch image 1)", "keyframe 4 (batch image 1)"]
    assert out[2].shape[0] == 1 and out[2].shape[-1] == 3


def test_video_node_with_keyframe_folder_and_auto_shots_equals_the_cli_and_its_report(
        loaded, synthetic_weights, tmp_path):
    state, nodes, model = loaded
    source = write_video(tmp_path / "in.mp4", two_shots(16, 4), audio_codec="aac")
    refs = state.input_dir / "refs"
    refs.mkdir()
    Image.fromarray(colourful(SMALL)).save(refs / "ref_000000.png")
    Image.fromarray(colourful((20, 30))[::-1].copy()).save(refs / "ref_000006.png")
    Image.fromarray(colourful(SMALL)[:, ::-1].copy()).save(refs / "ref_000016.png")
    keyframes = nodes.LoadKeyframes.execute(folder="refs").args[0]
    assert keyframes.frames == [0, 6, 16]
    video, report_text, plot = nodes.ColorizeVideo.execute(
        model=model, video=nodes.InputImpl.VideoFromFile(str(source)), keyframes=keyframes,
        shots="auto", reference_is_first_frame=False, memory_mode="balanced", max_side=0, crf=0).args
    invoke([source, "--ref-dir", refs, "--shots", "auto", "--report", tmp_path / "cli.json",
            "-o", tmp_path / "cli.mp4", "--weights", synthetic_weights, "--device", "cpu", "--fp32",
            "-q", "--crf", "0"])
    node_video, cli_video = read_video(Path(video.file)), read_video(tmp_path / "cli.mp4")
    assert len(node_video.frames) == len(cli_video.frames) == 20
    for index, (a, b) in enumerate(zip(node_video.frames, cli_video.frames)):
        assert np.array_equal(a, b), f"frame {index} differs from the CLI's"
    assert node_video.audio_codecs == cli_video.audio_codecs == ["aac"]
    assert node_video.times == cli_video.times

    cli_text = (tmp_path / "cli.json").read_text()
    # The same text but for where the references are: the node names them inside ComfyUI's
    # input directory (refs/ref_000006.png), the CLI as given (.../refs/ref_000006.png).
    assert report_text == cli_text.replace(str(refs) + "/", "refs/")
    report = json.loads(report_text)
    assert [s["start"] for s in report["shots"]] == [0, 16]          # the cut was found
    assert report["shots"][0]["references"] == ["refs/ref_000000.png", "refs/ref_000006.png"]
    assert "spans" in report and report["summary"]["scored_frames"] == 20
    cli_plot = np.asarray(Image.open(tmp_path / "cli.png").convert("RGB"))
    assert np.array_equal((plot[0].numpy() * 255).round().astype(np.uint8), cli_plot)


# -- bad input: the CLI's checks, one line each (a fake colorizer: nothing is computed) ---------

def frames_node(nodes, **inputs):
    from test_nodes import FakeModel

    values = dict(model=FakeModel(), images=as_image(*two_shots(3, 0)), reference_is_first_frame=False,
                  memory_mode="balanced", max_side=0) | inputs
    return nodes.ColorizeFrames.execute(**values).args


def batch_keyframes(nodes, frames: str, count: int = 1):
    return nodes.ColorizeKeyframes.execute(images=as_image(*[colourful(SMALL)] * count), frames=frames).args[0]


@pytest.mark.parametrize("inputs, message", [
    (lambda n: dict(reference=as_image(colourful(SMALL)), keyframes=batch_keyframes(n, "0")),
     "^Colorize Frames: two references for frame 0: the reference input reference and Colorize "
     r"Keyframes 0=keyframe 0 \(batch image 0\); give one per frame$"),
    (lambda n: dict(reference=as_image(colourful(SMALL)), keyframes=batch_keyframes(n, "5")),
     r"^Colorize Frames: reference for frame 5 \(keyframe 5 \(batch image 0\)\) is beyond the end of "
     r"the input \(3 frames, 0-2\)"),
    (lambda n: dict(keyframes=batch_keyframes(n, "1")),
     r"^Colorize Frames: no reference for frame 0 \(the first keyframe is for frame 1\)"),
    (lambda n: dict(), "^Colorize Frames: no reference: connect a reference image"),
    (lambda n: dict(reference=as_image(colourful(SMALL)), shots="1, x"),
     "^Colorize Frames: shots: 'x' is not a frame number; give none, auto, or the cut frames"),
    (lambda n: dict(reference=as_image(colourful(SMALL)), shots="2, 7"),
     r"^Colorize Frames: cut at frame 7 is past the last frame \(the video has 3 frames, 0-2\)"),
    (lambda n: dict(reference=as_image(colourful(SMALL)), shots="2, 1"),
     r"^Colorize Frames: cut at frame 1 is not after the previous one \(2\)"),
])
def test_bad_references_and_shots_give_the_clis_one_line_message(comfy, inputs, message):
    _, nodes = comfy
    with pytest.raises(nodes.ColorizeNodeError, match=message) as info:
        frames_node(nodes, **inputs(nodes))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("frames, message", [
    ("0", r"^Colorize Keyframes: 2 image\(s\) but 1 frame entry \(0\); give one frame per image"),
    ("0, 4, 8", r"^Colorize Keyframes: 2 image\(s\) but 3 frame entries \(0, 4, 8\)"),
    ("0, x", "^Colorize Keyframes: frames: 'x' is not a frame number"),
])
def test_keyframe_batch_and_frames_must_agree(comfy, frames, message):
    _, nodes = comfy
    with pytest.raises(nodes.ColorizeNodeError, match=message):
        batch_keyframes(nodes, frames, count=2)


def test_one_image_may_serve_several_frames_and_lists_chain(comfy):
    _, nodes = comfy
    first = batch_keyframes(nodes, "0, 12+30", count=2)
    both = nodes.ColorizeKeyframes.execute(images=as_image(colourful(SMALL)), frames="20",
                                           keyframes=first).args[0]
    assert both.frames == [0, 12, 20, 30] and first.frames == [0, 12, 30]


def test_load_keyframes_stays_inside_the_input_directory(comfy):
    state, nodes = comfy
    (state.input_dir / "empty").mkdir()
    with pytest.raises(nodes.ColorizeNodeError, match="outside ComfyUI's input directory"):
        nodes.LoadKeyframes.execute(folder="../models")
    with pytest.raises(nodes.ColorizeNodeError, match="^Load Keyframes .*empty holds no ref_<frame>"):
        nodes.LoadKeyframes.execute(folder="empty")
    with pytest.raises(nodes.ColorizeNodeError, match="^Load Keyframes folder not found"):
        nodes.LoadKeyframes.execute(folder="missing")
