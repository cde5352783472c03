"""The colorize nodes against the ComfyUI stand-in: schema, progress, interrupt, errors, bad input.

A deterministic fake colorizer keeps these fast; test_nodes_engine.py checks the numbers against
the real engine with synthetic weights.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_standin import InterruptProcessingException
from comfy_clips import SIZE, as_image, audio_only, colourful, moving_gray
from video_helpers import FakeColorizer, read_video, tint, write_video

from colorize.comfyui.models import RunOptions
from colorize.errors import OutOfDeviceMemoryError


class GuidedFake(FakeColorizer):
    """The fake colorizer taking the engine guide the nodes always pass (for their report)."""

    def colorize(self, frames, reference, guide=None):
        self.guide = guide
        return super().colorize(frames, reference)


@dataclass
class FakeModel:
    """Stands for LoadedModel: hands out a fake colorizer, records the options."""

    fake: FakeColorizer = field(default_factory=GuidedFake)
    options: list[RunOptions] = field(default_factory=list)
    released: bool = False
    holder: object = "patcher"

    def colorizer(self, options: RunOptions) -> FakeColorizer:
        self.options.append(options)
        return self.fake


def run_frames(nodes, model, images, reference, **knobs):
    values = dict(reference_is_first_frame=False, memory_mode="balanced", max_side=0) | knobs
    return nodes.ColorizeFrames.execute(model=model, images=images, reference=reference, **values).args[0]


NODE_IDS = {"ColorizeLoadColorMNet", "ColorizeFrames", "ColorizeVideo", "ColorizeKeyframes",
            "ColorizeLoadKeyframes", "ColorizePickKeyframes", "ColorizeKeepLuminance"}
#: Inputs the first release of each node had: they stay required; everything added is optional.
FIRST_RELEASE = {"ColorizeFrames": ["model", "images", "reference_is_first_frame", "memory_mode", "max_side"],
                 "ColorizeVideo": ["model", "video", "reference_is_first_frame", "memory_mode", "max_side"]}


def test_schema_lists_the_nodes_in_category_colorize(comfy):
    _, nodes = comfy
    extension = asyncio.run(nodes.comfy_entrypoint())
    classes = asyncio.run(extension.get_node_list())
    schemas = [cls.define_schema() for cls in classes]
    assert {s.node_id for s in schemas} == NODE_IDS
    assert {s.category for s in schemas} == {"colorize"}
    video = next(s for s in schemas if s.node_id == "ColorizeVideo")
    assert [type(i).__name__ for i in video.inputs][:3] == ["COLORMNET.Input", "VIDEO.Input", "IMAGE.Input"]
    assert [i.args[0] for i in video.inputs][2:] == ["reference", "reference_is_first_frame", "memory_mode",
                                                     "max_side", "crf", "keyframes", "shots"]
    assert [type(o).__name__ for o in video.outputs] == ["VIDEO.Output", "STRING.Output", "IMAGE.Output"]


@pytest.mark.parametrize("node_id", sorted(FIRST_RELEASE))
def test_inputs_added_later_are_optional_with_defaults_that_change_nothing(comfy, node_id):
    # API workflows saved before an input existed still validate and run as before.
    _, nodes = comfy
    schema = next(cls for cls in nodes.NODES if cls.define_schema().node_id == node_id).define_schema()
    later = {i.args[0]: i for i in schema.inputs if i.args[0] not in FIRST_RELEASE[node_id]}
    assert all(getattr(i, "optional", False) for i in later.values()), sorted(later)
    assert later["shots"].default == "none" and not hasattr(later["keyframes"], "default")
    if node_id == "ColorizeVideo":
        assert later["crf"].default == 18


def test_frames_node_keeps_count_size_and_values_of_the_colorizer(comfy):
    state, nodes = comfy
    frames = moving_gray(4)
    model = FakeModel()
    out = run_frames(nodes, model, as_image(*frames), as_image(colourful()))
    assert out.shape == (4, *SIZE, 3) and out.dtype == torch.float32
    for got, frame in zip(out, frames):
        assert np.array_equal((got.numpy() * 255).round().astype(np.uint8), tint(frame, colourful()))
    assert state.progress[0] == (0, 4) and state.progress[-1] == (4, 4)
    assert [done for done, _ in state.progress] == [0, 1, 2, 3, 4]
    assert state.loads and state.loads[-1][0] == ["patcher"]   # weights brought back before the run


def test_frames_node_passes_the_knobs(comfy):
    _, nodes = comfy
    model = FakeModel()
    run_frames(nodes, model, as_image(*moving_gray(2)), as_image(colourful()),
               reference_is_first_frame=True, memory_mode="low", max_side=64)
    assert model.options == [RunOptions(memory_mode="low", max_side=64, reference_is_first_frame=True)]


def test_reference_of_another_size_is_resized_to_the_frames(comfy):
    _, nodes = comfy
    model = FakeModel()
    run_frames(nodes, model, as_image(*moving_gray(2)), as_image(colourful((30, 200))))
    assert model.fake.reference.shape == (*SIZE, 3)


@pytest.mark.parametrize("channels", [1, 4])
def test_gray_and_rgba_references_become_rgb(comfy, channels):
    _, nodes = comfy
    model = FakeModel()
    reference = torch.full((1, *SIZE, channels), 0.5)
    if channels == 4:
        reference[..., 3] = 0.0  # fully transparent: composited on white
    run_frames(nodes, model, as_image(*moving_gray(2)), reference)
    expected = 128 if channels == 1 else 255
    assert model.fake.reference.shape == (*SIZE, 3)
    assert np.all(model.fake.reference == expected)


def test_batch_of_one_frame(comfy):
    state, nodes = comfy
    out = run_frames(nodes, FakeModel(), as_image(*moving_gray(1)), as_image(colourful()))
    assert out.shape == (1, *SIZE, 3)
    assert state.progress[-1] == (1, 1)


@pytest.mark.parametrize("images, message", [
    (torch.zeros((0, *SIZE, 3)), "the frames is an empty IMAGE batch"),
    (torch.zeros((2, *SIZE, 2)), "the frames has 2 channels"),
])
def test_bad_frame_batches_give_one_clear_message(comfy, images, message):
    _, nodes = comfy
    with pytest.raises(nodes.ColorizeNodeError, match=message) as info:
        run_frames(nodes, FakeModel(), images, as_image(colourful()))
    assert "\n" not in str(info.value)


def test_empty_reference_batch_is_named(comfy):
    _, nodes = comfy
    with pytest.raises(nodes.ColorizeNodeError, match="the reference is an empty IMAGE batch"):
        run_frames(nodes, FakeModel(), as_image(*moving_gray(2)), torch.zeros((0, *SIZE, 3)))


def test_interrupt_stops_within_one_frame(comfy):
    state, nodes = comfy
    model = FakeModel()
    state.interrupt_after = 3          # progress (0,n), (1,n), (2,n) sent, then Interrupt pressed
    with pytest.raises(InterruptProcessingException):
        run_frames(nodes, model, as_image(*moving_gray(8)), as_image(colourful()))
    assert len(model.fake.seen_frames) <= 4   # at most one frame beyond the one finished last


def test_out_of_memory_after_back_off_is_one_clear_line(comfy):
    _, nodes = comfy
    model = FakeModel()
    model.fake.fail_after = 1
    model.fake.failure = OutOfDeviceMemoryError("out of memory even at the smallest processing size; "
                                                "free device memory or use --device cpu")
    with pytest.raises(nodes.ColorizeNodeError, match="^Colorize Frames: out of memory"):
        run_frames(nodes, model, as_image(*moving_gray(3)), as_image(colourful()))


def test_raw_torch_out_of_memory_is_translated(comfy):
    _, nodes = comfy
    model = FakeModel()
    model.fake.fail_after = 0
    model.fake.failure = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(nodes.ColorizeNodeError, match="out of memory .*max_side"):
        run_frames(nodes, model, as_image(*moving_gray(2)), as_image(colourful()))


def test_missing_checkpoint_names_the_folder(comfy):
    _, nodes = comfy
    with pytest.raises(nodes.ColorizeNodeError, match="checkpoint 'gone.safetensors' not found in models/colormnet"):
        nodes.LoadColorMNet.execute(checkpoint="gone.safetensors", precision="auto")


def test_unreadable_checkpoint_is_one_clear_line(comfy):
    state, nodes = comfy
    folder = state.models_dir / "colormnet"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.safetensors").write_bytes(b"not a checkpoint at all")
    assert "broken.safetensors" in nodes.checkpoint_choices()
    with pytest.raises(nodes.ColorizeNodeError, match="^Load ColorMNet: .*broken.safetensors") as info:
        nodes.LoadColorMNet.execute(checkpoint="broken.safetensors", precision="auto")
    assert "\n" not in str(info.value)


def test_extra_model_paths_folders_are_kept(comfy, tmp_path):
    state, nodes = comfy
    folders = state.modules["folder_paths"]
    extra = tmp_path / "shared-models"
    extra.mkdir()
    (extra / "extra.safetensors").write_bytes(b"x")
    folders.folder_names_and_paths["colormnet"] = ([str(extra)], set())  # as extra_model_paths.yaml adds it
    nodes.register_model_folder()
    paths, suffixes = folders.folder_names_and_paths["colormnet"]
    assert str(extra) in paths and ".safetensors" in suffixes
    assert "extra.safetensors" in nodes.checkpoint_choices()


# ----- the VIDEO node


def run_video(nodes, model, video, reference, **knobs):
    values = dict(reference_is_first_frame=False, memory_mode="balanced", max_side=0) | knobs
    return nodes.ColorizeVideo.execute(model=model, video=video, reference=reference, **values).args[0]


def test_video_node_streams_to_an_mp4_with_audio(comfy, tmp_path):
    state, nodes = comfy
    frames = moving_gray(6)
    source = write_video(tmp_path / "in.mp4", frames, audio_codec="aac")
    model = FakeModel()
    result = run_video(nodes, model, nodes.InputImpl.VideoFromFile(str(source)), as_image(colourful()))
    path = Path(result.file)
    assert path.parent == state.temp_dir / "colorize" and path.suffix == ".mp4"
    decoded = read_video(path)
    assert len(decoded.frames) == 6
    assert decoded.audio_codecs == ["aac"]
    assert state.progress[-1] == (6, 6)
    assert len(model.fake.seen_frames) == 6


def test_video_node_crf_reaches_the_encoder(comfy, tmp_path):
    _, nodes = comfy
    source = write_video(tmp_path / "in.mp4", moving_gray(6))
    sizes = {}
    for crf in (0, 40):
        result = run_video(nodes, FakeModel(), nodes.InputImpl.VideoFromFile(str(source)),
                           as_image(colourful()), crf=crf)
        sizes[crf] = Path(result.file).stat().st_size
        assert len(read_video(Path(result.file)).frames) == 6
    assert sizes[0] > 2 * sizes[40]            # lossless against heavily compressed
    with pytest.raises(nodes.ColorizeNodeError, match="^Colorize Video: crf must be 0-51"):
        run_video(nodes, FakeModel(), nodes.InputImpl.VideoFromFile(str(source)),
                  as_image(colourful()), crf=52)


def test_video_with_no_frames_is_a_clear_message(comfy, tmp_path):
    _, nodes = comfy
    no_video = audio_only(tmp_path / "audio.m4a")
    with pytest.raises(nodes.ColorizeNodeError, match="^Colorize Video: the VIDEO has no frames"):
        run_video(nodes, FakeModel(), nodes.InputImpl.VideoFromFile(str(no_video)), as_image(colourful()))
    assert not list((tmp_path / "comfyui" / "temp" / "colorize").glob("*.mp4"))


def test_video_interrupt_leaves_no_output(comfy, tmp_path):
    state, nodes = comfy
    source = write_video(tmp_path / "in.mp4", moving_gray(8))
    model = FakeModel()
    state.interrupt_after = 2
    with pytest.raises(InterruptProcessingException):
        run_video(nodes, model, nodes.InputImpl.VideoFromFile(str(source)), as_image(colourful()))
    assert len(model.fake.seen_frames) <= 4
    assert not list((state.temp_dir / "colorize").iterdir())


def test_video_from_memory_is_written_once_then_streamed(comfy, tmp_path):
    state, nodes = comfy
    source = write_video(tmp_path / "in.mp4", moving_gray(3))

    class InMemoryVideo:  # a VIDEO that is not a plain file (e.g. built from components)
        def save_to(self, path, **kwargs):
            Path(path).write_bytes(source.read_bytes())

    result = run_video(nodes, FakeModel(), InMemoryVideo(), as_image(colourful()))
    assert len(read_video(Path(result.file)).frames) == 3
    # the temporary copy of the input is gone, only the result stays
    assert [p.name for p in (state.temp_dir / "colorize").iterdir()] == [Path(result.file).name]
