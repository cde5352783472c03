"""*Pick Keyframes* and *Keep Luminance*: the choice and the merge of ``colorize keyframes``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "references"))

from comfy_clips import as_image, colourful  # noqa: E402
from keyframe_clips import film  # noqa: E402
from video_helpers import invoke, write_video  # noqa: E402


def as_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.numpy() * 255).round().astype(np.uint8)


def test_pick_keyframes_on_a_video_is_colorize_keyframes_choice(comfy, tmp_path):
    pytest.importorskip("scenedetect")
    _, nodes = comfy
    clip = write_video(tmp_path / "film.mp4", film().frames)
    stills, frames, info = nodes.PickKeyframes.execute(
        video=nodes.InputImpl.VideoFromFile(str(clip)), shots="auto").args
    invoke(["keyframes", clip, "-o", tmp_path / "refs", "--shots", "auto", "-q"])
    cli = json.loads((tmp_path / "refs" / "keyframes.json").read_text())
    info = json.loads(info)
    # One still per group: the returning set-up (shot 3) shares the first shot's.
    assert frames == "0+54, 20, 36"
    assert stills.shape == (3, 48, 64, 3)
    assert info["keyframes"] == cli["keyframes"] and info["groups"] == cli["groups"]
    assert info["cuts"] == cli["cuts"] == [20, 36, 54]
    for index, group in enumerate(cli["groups"]):
        gray = np.asarray(Image.open(tmp_path / "refs" / group["still"]))
        assert np.array_equal(as_uint8(stills[index])[..., 0], gray)


def test_pick_keyframes_on_an_image_batch_with_cut_frames(comfy):
    state, nodes = comfy
    clip = film()
    stills, frames, info = nodes.PickKeyframes.execute(images=as_image(*clip.frames), shots="20, 36, 54").args
    assert frames == "0+54, 20, 36" and stills.shape[0] == 3
    assert [k["source_frame"] >= clip.fade_end for k in json.loads(info)["keyframes"][:1]] == [True]
    assert state.progress[-1] == (70, 70)
    alone, frames, _ = nodes.PickKeyframes.execute(images=as_image(*clip.frames), shots="20, 36, 54",
                                                   group_shots=False).args
    assert frames == "0, 20, 36, 54" and alone.shape[0] == 4


def test_picked_stills_feed_colorize_keyframes(comfy):
    _, nodes = comfy
    stills, frames, _ = nodes.PickKeyframes.execute(images=as_image(*film().frames), shots="20, 36, 54").args
    keyframes = nodes.ColorizeKeyframes.execute(images=stills, frames=frames).args[0]
    assert keyframes.frames == [0, 20, 36, 54]


@pytest.mark.parametrize("inputs, message", [
    (dict(), "connect either a VIDEO or an IMAGE batch"),
    (dict(images=as_image(colourful()), shots="5"), r"cut at frame 5 is past the last frame"),
    (dict(images=as_image(colourful()), shots="none", report="{}"), "report: not a colorize confidence report"),
])
def test_pick_keyframes_bad_input(comfy, inputs, message):
    _, nodes = comfy
    with pytest.raises(nodes.ColorizeNodeError, match=message) as info:
        nodes.PickKeyframes.execute(**({"shots": "auto"} | inputs))
    assert "\n" not in str(info.value)


def test_keep_luminance_is_the_clis_merge_at_the_stills_size(comfy):
    from colorize.color import keep_luminance

    _, nodes = comfy
    gray = [frame for frame in film().frames[10:12]]
    colour = [colourful((96, 128)), colourful((96, 128))[::-1].copy()]   # another size: resized
    merged = nodes.KeepLuminance.execute(images=as_image(*colour), gray=as_image(*gray)).args[0]
    assert merged.shape == (2, 48, 64, 3)
    for index in range(2):
        assert np.array_equal(as_uint8(merged[index]), keep_luminance(colour[index], gray[index]))
    with pytest.raises(nodes.ColorizeNodeError, match="^Keep Luminance: 2 colour image"):
        nodes.KeepLuminance.execute(images=as_image(*colour), gray=as_image(*film().frames[:3]))
