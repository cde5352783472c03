"""The ColorMNet nodes, written against ComfyUI's V3 node API (``comfy_api.latest``).

This is the only module of the package that imports ComfyUI, and only the loader file that
``colorize comfyui install`` puts into ``custom_nodes/`` imports it. The nodes stay thin: they
translate ComfyUI inputs, call :mod:`colorize.comfyui.work` (the same engine and video pipeline
as the ``colorize`` command) and report through ComfyUI's progress bar and interrupt flag.

Nodes (category ``colorize``):

* *Load ColorMNet* (``ColorizeLoadColorMNet``): checkpoint from ``models/colormnet`` (any folder
  ``extra_model_paths.yaml`` adds for ``colormnet``) or colorize's own search path; precision.
* *Colorize Frames* (``ColorizeFrames``): IMAGE batch + reference IMAGE -> IMAGE batch.
* *Colorize Video* (``ColorizeVideo``): VIDEO + reference IMAGE -> VIDEO, streamed file to file.
  Both also take keyframe references and shots (``colorize --ref FRAME=PATH --shots``) and
  output the confidence report (``colorize --report``): its JSON as STRING, its plot as IMAGE.
* *Colorize Keyframes* (``ColorizeKeyframes``): IMAGE batch + the frame of each image -> keyframes.
* *Load Keyframes* (``ColorizeLoadKeyframes``): a folder of ``ref_NNNNNN.png`` in the input
  directory (``colorize --ref-dir``'s naming) -> keyframes.
* *Pick Keyframes* (``ColorizePickKeyframes``): VIDEO or IMAGE batch + shots -> the gray stills
  to colour (one per group of alike shots) and the frames each serves (``colorize keyframes``).
* *Keep Luminance* (``ColorizeKeepLuminance``): generated colour images + their gray stills ->
  the colour on the stills' own luminance (``colorize keyframes --generate``'s merge).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import comfy.model_management as model_management
import comfy.utils
import folder_paths
from comfy_api.latest import ComfyExtension, InputImpl, io

from colorize.comfyui import footage as film
from colorize.comfyui import images as image_io
from colorize.comfyui import work
from colorize.comfyui.errors import NodeInputError
from colorize.comfyui.models import CACHE, MEMORY_MODES, PRECISIONS, LoadedModel, RunOptions
from colorize.errors import ColorizeError
from colorize.video.sink import DEFAULT_CRF

logger = logging.getLogger(__name__)

MODEL_FOLDER = "colormnet"
CHECKPOINT_SUFFIXES = {".safetensors", ".pth", ".pt", ".ckpt", ".bin"}
#: Checkpoint choice meaning "what the colorize command would use" (--weights search path).
COLORIZE_DEFAULT = "(colorize default)"
CATEGORY = "colorize"
DEFAULT_VIDEO_CRF = DEFAULT_CRF["libx264"]

ColorMNetModel = io.Custom("COLORMNET")
KeyframesType = io.Custom(film.KEYFRAMES_TYPE)


class ColorizeNodeError(RuntimeError):
    """The one-line message a failed node shows (and ``comfy-run`` prints from execution_error)."""


def register_model_folder() -> None:
    """``models/colormnet`` as a ComfyUI model folder, keeping folders extra_model_paths.yaml added."""
    default = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    if MODEL_FOLDER in folder_paths.folder_names_and_paths:
        paths, suffixes = folder_paths.folder_names_and_paths[MODEL_FOLDER]
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(suffixes) | CHECKPOINT_SUFFIXES)
    else:
        folder_paths.folder_names_and_paths[MODEL_FOLDER] = ([default], set(CHECKPOINT_SUFFIXES))


def checkpoint_choices() -> list[str]:
    names = list(folder_paths.get_filename_list(MODEL_FOLDER))
    return names + [COLORIZE_DEFAULT]


def resolve_checkpoint(name: str) -> Path:
    if name == COLORIZE_DEFAULT:
        try:
            from colorize.weights import resolve_checkpoint as colorize_search
        except ImportError:  # pragma: no cover - the weights package is part of colorize
            raise ColorizeNodeError("colorize's checkpoint search is not available in this install") from None
        try:
            return Path(colorize_search(None, allow_download=False, progress=False))
        except ColorizeError as error:
            raise ColorizeNodeError(
                f"no colorize checkpoint found ({error}); put one into models/{MODEL_FOLDER} or run "
                "'colorize weights download' with the Python ComfyUI runs with") from None
    path = folder_paths.get_full_path(MODEL_FOLDER, name)
    if path is None or not os.path.isfile(path):
        folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
        raise ColorizeNodeError(
            f"checkpoint '{name}' not found in models/{MODEL_FOLDER} ({folders}); copy the ColorMNet "
            "checkpoint there (or pick another one) and queue the prompt again")
    return Path(path)


def _progress(total: int):
    bar = comfy.utils.ProgressBar(max(1, total))

    def on_frame(done: int, total: int) -> None:
        bar.update_absolute(done, max(1, total))

    return on_frame


def _check_interrupt() -> None:
    model_management.throw_exception_if_processing_interrupted()


def _make_holder(model: LoadedModel) -> Any:
    """A ModelPatcher around the network, so that ComfyUI can move it off the device when other
    models need the memory (and back before our next run)."""
    try:
        import comfy.model_patcher

        patcher_class = getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
        return patcher_class(model.base.network, load_device=model.base.device,
                             offload_device=model_management.unet_offload_device())
    except Exception as error:  # noqa: BLE001 - memory sharing is an optimisation
        logger.warning("colorize: ComfyUI's model manager cannot hold ColorMNet (%s); it stays loaded", error)
        return None


def _ready(model: LoadedModel) -> LoadedModel:
    model = CACHE.reacquire(model)
    if model.holder is None:
        model.holder = _make_holder(model)
    if model.holder is not None:
        model_management.load_models_gpu([model.holder], force_full_load=True)
    return model


def _run_errors(error: BaseException, node: str) -> ColorizeNodeError:
    """One clear line for what went wrong inside a run."""
    from colorize.devices import is_out_of_memory

    if isinstance(error, ColorizeError):
        return ColorizeNodeError(f"{node}: {error}")
    if is_out_of_memory(error):
        return ColorizeNodeError(
            f"{node}: out of memory even after lowering the processing size; set max_side lower, "
            "use memory_mode low, or free memory for this prompt")
    raise error


def _options(memory_mode: str, max_side: int, reference_is_first_frame: bool) -> RunOptions:
    if memory_mode not in MEMORY_MODES:
        raise ColorizeNodeError(f"memory_mode must be one of {', '.join(MEMORY_MODES)}, got {memory_mode!r}")
    return RunOptions(memory_mode=memory_mode, max_side=int(max_side) or None,
                      reference_is_first_frame=bool(reference_is_first_frame))


def _common_inputs() -> list:
    return [
        io.Boolean.Input("reference_is_first_frame", default=False,
                         tooltip="On: the reference is the colorized first frame of this clip. "
                                 "Off: an exemplar photo whose colours are carried over."),
        io.Combo.Input("memory_mode", options=list(MEMORY_MODES), default="balanced",
                       tooltip="low: less memory; balanced: ColorMNet's defaults; high: longer memory."),
        io.Int.Input("max_side", default=0, min=0, max=16384, step=16,
                     tooltip="Longest side the network runs at (colour is carried back to full size). "
                             "0: full resolution, lowered automatically when it does not fit."),
    ]


def _reference_input() -> Any:
    # Optional since keyframes may hold frame 0's reference (a folder with ref_000000.png, or
    # Pick Keyframes' stills, which always start at frame 0); workflows that connect it still
    # validate as before.
    return io.Image.Input("reference", optional=True,
                          tooltip="Colour reference for frame 0 on; resized to the frame size (of a "
                                  "batch, the first image). May be left out when the keyframes have "
                                  "one for frame 0.")


def _footage_inputs() -> list:
    """Optional, with defaults that change nothing, so that saved workflows still validate."""
    return [
        KeyframesType.Input("keyframes", optional=True,
                            tooltip="Keyframe references (Colorize Keyframes, Load Keyframes), as "
                                    "colorize --ref FRAME=PATH: each encoded at its frame and kept "
                                    "in memory for the rest of its shot."),
        io.String.Input("shots", default=film.SHOTS_NONE, optional=True,
                        tooltip="none; auto (cuts found with PySceneDetect, as colorize --shots "
                                "auto); or cut frames, e.g. '48, 96' (each the first frame of a "
                                "shot). At each cut the memory starts again from the latest "
                                "reference at or before it."),
    ]


def _report_outputs() -> list:
    return [
        io.String.Output(display_name="report",
                         tooltip="The confidence report's JSON, as colorize --report writes it "
                                 "(per-frame scores, low-confidence spans with suggested keyframes)."),
        io.Image.Output(display_name="plot", tooltip="The report's score plot."),
    ]


def _image_batch(arrays: list) -> Any:
    """uint8 (H, W) or (H, W, 3) arrays of one size -> an IMAGE batch (B, H, W, 3)."""
    import numpy as np
    import torch

    first = arrays[0]
    batch = torch.empty((len(arrays), first.shape[0], first.shape[1], 3), dtype=torch.float32)
    for index, array in enumerate(arrays):
        rgb = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array
        image_io.write_rgb(np.ascontiguousarray(rgb), batch[index])
    return batch


def _report_values(setup: Any) -> tuple[str, Any]:
    return film.report_json(setup), _image_batch([film.report_plot_rgb(setup)])


def _film_inputs(reference: Any, keyframes: Any, shots: Any) -> film.FootageInputs:
    if keyframes is not None and not isinstance(keyframes, film.Keyframes):
        raise ColorizeNodeError("keyframes must come from Colorize Keyframes or Load Keyframes")
    return film.FootageInputs(reference=reference, keyframes=keyframes,
                              shots=film.SHOTS_NONE if shots is None else str(shots))


class LoadColorMNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        register_model_folder()
        return io.Schema(
            node_id="ColorizeLoadColorMNet",
            display_name="Load ColorMNet",
            category=CATEGORY,
            description="Loads a ColorMNet checkpoint for the Colorize nodes (kept between prompts).",
            inputs=[
                io.Combo.Input("checkpoint", options=checkpoint_choices(),
                               tooltip=f"A checkpoint in models/{MODEL_FOLDER}, or {COLORIZE_DEFAULT}: "
                                       "the one the colorize command finds."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                               tooltip="auto: fp16 on CUDA, bf16 on CPUs with native bfloat16, fp32 elsewhere."),
            ],
            outputs=[ColorMNetModel.Output(display_name="model")],
        )

    @classmethod
    def fingerprint_inputs(cls, checkpoint: str, precision: str) -> Any:
        try:
            path = resolve_checkpoint(checkpoint)
            return (str(path), path.stat().st_mtime_ns, precision)
        except (ColorizeNodeError, OSError):
            return float("nan")  # never equal: the error is raised again on execution

    @classmethod
    def execute(cls, checkpoint: str, precision: str) -> io.NodeOutput:
        path = resolve_checkpoint(checkpoint)
        device = model_management.get_torch_device()
        try:
            model, built = CACHE.load(path, device.type, precision)
        except ColorizeError as error:
            raise ColorizeNodeError(f"Load ColorMNet: {error}") from None
        if built:
            model.holder = _make_holder(model)
        return io.NodeOutput(model)


class ColorizeFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ColorizeFrames",
            display_name="Colorize Frames",
            category=CATEGORY,
            description="Colorizes an IMAGE batch (the frames of one shot, in order) from a reference image.",
            inputs=[
                ColorMNetModel.Input("model"),
                io.Image.Input("images", tooltip="The frames, in order; colour is taken from their luminance."),
                _reference_input(),
                *_common_inputs(),
                *_footage_inputs(),
            ],
            outputs=[io.Image.Output(display_name="images"), *_report_outputs()],
        )

    @classmethod
    def execute(cls, model: LoadedModel, images, reference_is_first_frame: bool,
                memory_mode: str, max_side: int, reference=None, keyframes=None,
                shots: str = film.SHOTS_NONE) -> io.NodeOutput:
        options = _options(memory_mode, max_side, reference_is_first_frame)
        try:
            inputs = _film_inputs(reference, keyframes, shots)
            work_model = _ready(model)
            count = int(images.shape[0]) if getattr(images, "dim", lambda: 0)() == 4 else 0
            result, setup = work.colorize_batch(work_model.colorizer(options), images, inputs,
                                                _progress(count), _check_interrupt)
            report, plot = _report_values(setup)
        except Exception as error:  # noqa: BLE001 - translated, or re-raised as is
            raise _run_errors(error, "Colorize Frames") from None
        return io.NodeOutput(result, report, plot)


def _scratch() -> Path:
    scratch = Path(folder_paths.get_temp_directory()) / "colorize"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


@contextlib.contextmanager
def _video_file(video: Any) -> Iterator[Path]:
    """A file our decoder can stream: the VIDEO's own file when it is a plain, untrimmed file,
    else the VIDEO written once to the scratch folder (ComfyUI streams that copy itself), removed
    afterwards."""
    source = None
    try:
        source = video.get_stream_source() if isinstance(video, InputImpl.VideoFromFile) else None
    except Exception:  # noqa: BLE001 - fall back to writing a copy
        source = None
    trim = getattr(video, "get_active_trim_window", lambda: (0.0, 0.0))()
    if isinstance(source, str) and os.path.isfile(source) and not any(trim):
        yield Path(source)
        return
    copy = _scratch() / f"{uuid.uuid4().hex}-input.mp4"
    try:
        try:
            video.save_to(str(copy))
        except Exception as error:  # noqa: BLE001 - e.g. a VIDEO built from zero images
            raise NodeInputError(f"the VIDEO has no frames to colorize ({error})") from None
        yield copy
    finally:
        copy.unlink(missing_ok=True)


class ColorizeVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ColorizeVideo",
            display_name="Colorize Video",
            category=CATEGORY,
            description="Colorizes a VIDEO from a reference image, streaming frame by frame "
                        "(memory stays flat for any length); frame rate, timing and audio are kept.",
            inputs=[
                ColorMNetModel.Input("model"),
                io.Video.Input("video", tooltip="The video to colorize (for example from Load Video)."),
                _reference_input(),
                *_common_inputs(),
                # Optional, so that workflows saved before it existed still validate.
                io.Int.Input("crf", default=DEFAULT_VIDEO_CRF, min=0, max=51, optional=True,
                             tooltip="H.264 quality of the colorized video, as colorize --crf: "
                                     f"{DEFAULT_VIDEO_CRF} looks like the frames, lower is larger, "
                                     "0 is lossless (exact frames, for comparisons)."),
                *_footage_inputs(),
            ],
            outputs=[io.Video.Output(display_name="video"), *_report_outputs()],
        )

    @classmethod
    def execute(cls, model: LoadedModel, video, reference_is_first_frame: bool,
                memory_mode: str, max_side: int, crf: int = DEFAULT_VIDEO_CRF, reference=None,
                keyframes=None, shots: str = film.SHOTS_NONE) -> io.NodeOutput:
        options = _options(memory_mode, max_side, reference_is_first_frame)
        if not 0 <= int(crf) <= 51:
            raise ColorizeNodeError(f"Colorize Video: crf must be 0-51 (0 is lossless), got {crf}")
        output = _scratch() / f"{uuid.uuid4().hex}.mp4"
        try:
            inputs = _film_inputs(reference, keyframes, shots)
            with _video_file(video) as source:
                work_model = _ready(model)
                _, setup = work.colorize_video_file(work_model.colorizer(options), source, inputs,
                                                    output, _progress(0), _check_interrupt, crf=int(crf))
            report, plot = _report_values(setup)
        except Exception as error:  # noqa: BLE001 - translated, or re-raised as is
            raise _run_errors(error, "Colorize Video") from None
        return io.NodeOutput(InputImpl.VideoFromFile(str(output)), report, plot)


class ColorizeKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ColorizeKeyframes",
            display_name="Colorize Keyframes",
            category=CATEGORY,
            description="Keyframe references for Colorize Video / Frames: each image of the batch "
                        "applies from its frame on, as colorize --ref FRAME=PATH.",
            inputs=[
                io.Image.Input("images", tooltip="The colour references, one per entry of frames."),
                io.String.Input("frames", default="0", multiline=False,
                                tooltip="The frame of each image, in batch order, e.g. '0, 120, 300' "
                                        "(0-based, decode order). '120+300' gives one image two frames."),
                KeyframesType.Input("keyframes", optional=True,
                                    tooltip="More keyframes to add these to (chains several sources)."),
            ],
            outputs=[KeyframesType.Output(display_name="keyframes")],
        )

    @classmethod
    def execute(cls, images, frames: str, keyframes=None) -> io.NodeOutput:
        try:
            return io.NodeOutput(film.keyframes_from_batch(images, frames, "Colorize Keyframes", keyframes))
        except ColorizeError as error:
            raise ColorizeNodeError(f"Colorize Keyframes: {error}") from None


def _input_folder(name: str) -> Path:
    """``name`` inside ComfyUI's input directory (never outside it)."""
    root = Path(folder_paths.get_input_directory()).resolve()
    folder = (root / (name or "").strip()).resolve()
    if folder != root and root not in folder.parents:
        raise ColorizeNodeError(f"Load Keyframes: folder {name!r} is outside ComfyUI's input "
                                "directory; give a folder inside it")
    return folder


class LoadKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ColorizeLoadKeyframes",
            display_name="Load Keyframes",
            category=CATEGORY,
            description="Keyframe references from a folder of ref_NNNNNN.png in ComfyUI's input "
                        "directory (ref_000120.png applies from frame 120), as colorize --ref-dir.",
            inputs=[
                io.String.Input("folder", default="keyframes",
                                tooltip="A folder in ComfyUI's input directory holding ref_<frame>.<ext> "
                                        "images (ref_000000.png, if present, is frame 0's reference)."),
                KeyframesType.Input("keyframes", optional=True,
                                    tooltip="More keyframes to add these to."),
            ],
            outputs=[KeyframesType.Output(display_name="keyframes")],
        )

    @classmethod
    def fingerprint_inputs(cls, folder: str, keyframes=None) -> Any:
        try:
            entries = sorted(_input_folder(folder).iterdir())
            return tuple((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries)
        except (ColorizeNodeError, OSError):
            return float("nan")  # never equal: the error is raised again on execution

    @classmethod
    def execute(cls, folder: str, keyframes=None) -> io.NodeOutput:
        path = _input_folder(folder)
        try:
            root = Path(folder_paths.get_input_directory()).resolve()
            return io.NodeOutput(film.keyframes_from_folder(path, root, "Load Keyframes", keyframes))
        except ColorizeError as error:
            raise ColorizeNodeError(f"{error}") from None


class PickKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from colorize.references.grouping import DEFAULT_GROUP_THRESHOLD

        return io.Schema(
            node_id="ColorizePickKeyframes",
            display_name="Pick Keyframes",
            category=CATEGORY,
            description="The frames that need a colour reference, as colorize keyframes picks them: "
                        "one good still per shot (no dark, blown-out, fading or blurred frame), shots "
                        "of the same set-up sharing one. Colour the stills, then feed them with "
                        "frames to Colorize Keyframes.",
            inputs=[
                io.Video.Input("video", optional=True, tooltip="The film (or connect images instead)."),
                io.Image.Input("images", optional=True, tooltip="The frames of a clip, in order."),
                io.String.Input("shots", default=film.SHOTS_AUTO,
                                tooltip="auto (PySceneDetect, as colorize --shots auto), none (frame 0 "
                                        "only), or cut frames, e.g. '48, 96'."),
                io.Boolean.Input("group_shots", default=True, optional=True,
                                 tooltip="Shots that look alike share one still (one colouring keeps a "
                                         "place or a face the same colour in every shot)."),
                io.Float.Input("group_threshold", default=DEFAULT_GROUP_THRESHOLD, min=0.0, max=1.0,
                               step=0.01, optional=True,
                               tooltip="How alike two shots must look to share a still (higher: "
                                       "fewer shots grouped)."),
                io.String.Input("report", optional=True, force_input=True,
                                tooltip="The report of an earlier Colorize run: its low-confidence "
                                        "spans get keyframes too (colorize keyframes --report)."),
            ],
            outputs=[
                io.Image.Output(display_name="stills", tooltip="One gray still per group, in frame order."),
                io.String.Output(display_name="frames",
                                 tooltip="The frames each still serves, for Colorize Keyframes "
                                         "('0, 120+300': the second still serves frames 120 and 300)."),
                io.String.Output(display_name="keyframes",
                                 tooltip="Every keyframe as colorize keyframes' keyframes.json lists it."),
            ],
        )

    @classmethod
    def execute(cls, shots: str, video=None, images=None, group_shots: bool = True,
                group_threshold: float | None = None, report: str | None = None) -> io.NodeOutput:
        import json

        if (video is None) == (images is None):
            raise ColorizeNodeError("Pick Keyframes: connect either a VIDEO or an IMAGE batch")
        choice = dict(shots=shots, group_shots=group_shots, group_threshold=group_threshold,
                      report_text=report)
        try:
            if video is not None:
                with _video_file(video) as source:
                    picked = work.pick_from_video(source, _progress(0), _check_interrupt, **choice)
            else:
                count = int(images.shape[0]) if getattr(images, "dim", lambda: 0)() == 4 else 0
                picked = work.pick_from_batch(images, _progress(count), _check_interrupt, **choice)
        except Exception as error:  # noqa: BLE001 - translated, or re-raised as is
            raise _run_errors(error, "Pick Keyframes") from None
        return io.NodeOutput(_image_batch(picked.stills), picked.frames_text,
                             json.dumps(picked.info, indent=2))


class KeepLuminance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ColorizeKeepLuminance",
            display_name="Keep Luminance",
            category=CATEGORY,
            description="Takes only the colour of generated images and puts it on their gray stills' "
                        "own luminance (an edit model shifts details; a reference that matches its "
                        "frame exactly is what the memory matches best), at the stills' size.",
            inputs=[
                io.Image.Input("images", tooltip="The coloured images (e.g. from an image-edit model)."),
                io.Image.Input("gray", tooltip="The gray stills they were made from, in the same order."),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, images, gray) -> io.NodeOutput:
        try:
            return io.NodeOutput(_image_batch(film.keep_luminance_batch(images, gray)))
        except ColorizeError as error:
            raise ColorizeNodeError(f"Keep Luminance: {error}") from None


NODES = [LoadColorMNet, ColorizeFrames, ColorizeVideo, ColorizeKeyframes, LoadKeyframes, PickKeyframes,
         KeepLuminance]


class ColorizeExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> ColorizeExtension:
    register_model_folder()
    return ColorizeExtension()
