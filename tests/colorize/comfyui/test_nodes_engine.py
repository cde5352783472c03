"""The nodes with the real engine and synthetic weights: same numbers as the engine and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comfy_clips import SIZE, as_image, colourful, moving_gray
from video_helpers import invoke, read_video, write_video


def test_frames_node_equals_the_engine(loaded, synthetic_weights):
    from colorize.engine import EngineConfig, build_colorizer

    state, nodes, model = loaded
    frames, reference = moving_gray(4), colourful()
    images = as_image(*frames)
    before = images.clone()
    out = nodes.ColorizeFrames.execute(model=model, images=images, reference=as_image(reference),
                                       reference_is_first_frame=False, memory_mode="balanced",
                                       max_side=0).args[0]
    engine = build_colorizer(EngineConfig(weights=synthetic_weights, device="cpu", precision="fp32"))
    expected = list(engine.colorize(iter(frames), reference))
    assert out.shape == (4, *SIZE, 3)
    got = (out.numpy() * 255).round().astype(np.uint8)
    for index, want in enumerate(expected):
        assert np.array_equal(got[index], want), f"frame {index} differs from the engine's"
    assert state.progress[-1] == (4, 4)
    assert np.array_equal(images.numpy(), before.numpy())   # the input batch is left untouched


def test_model_is_cached_between_prompts_and_reloaded_after_release(loaded):
    state, nodes, model = loaded
    again = nodes.LoadColorMNet.execute(checkpoint="synthetic.safetensors", precision="fp32").args[0]
    assert again is model and nodes.CACHE.builds == 1
    assert len(state.patchers) == 1 and state.patchers[0].model is model.base.network
    nodes.CACHE.release()                      # e.g. a checkpoint switch elsewhere
    assert model.released
    out = nodes.ColorizeFrames.execute(model=model, images=as_image(*moving_gray(1)),
                                       reference=as_image(colourful()), reference_is_first_frame=False,
                                       memory_mode="low", max_side=0).args[0]
    assert out.shape == (1, *SIZE, 3) and nodes.CACHE.builds == 2


def test_fp16_on_cpu_loads_for_checking(loaded):
    """fp16 on CPU runs the GPU default's numerics (tests/colorize/model/test_precision.py)."""
    _, nodes, _ = loaded
    model = nodes.LoadColorMNet.execute(checkpoint="synthetic.safetensors", precision="fp16").args[0]
    assert model.label.endswith("(fp16 on cpu)")


def test_video_node_equals_the_cli(loaded, synthetic_weights, tmp_path):
    state, nodes, model = loaded
    # Both sides encode losslessly (the node's crf input, the CLI's --crf): x264's threaded lossy
    # encoding can differ from run to run on the same frames, and this test is about the frames.
    source = write_video(tmp_path / "in.mp4", moving_gray(5), audio_codec="aac")
    reference = colourful((40, 60))           # another size: both resize it the same way
    from PIL import Image

    Image.fromarray(reference).save(tmp_path / "ref.png")
    result = nodes.ColorizeVideo.execute(model=model, video=nodes.InputImpl.VideoFromFile(str(source)),
                                         reference=as_image(reference), reference_is_first_frame=False,
                                         memory_mode="balanced", max_side=0, crf=0).args[0]
    invoke([source, "--ref", tmp_path / "ref.png", "-o", tmp_path / "cli.mp4", "--weights",
            synthetic_weights, "--device", "cpu", "--fp32", "-q", "--crf", "0"])
    node_video, cli_video = read_video(Path(result.file)), read_video(tmp_path / "cli.mp4")
    assert len(node_video.frames) == len(cli_video.frames) == 5
    for a, b in zip(node_video.frames, cli_video.frames):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    assert node_video.audio_codecs == cli_video.audio_codecs == ["aac"]
    assert node_video.times == cli_video.times
