"""Helpers for the colorize I/O tests: tiny videos built with PyAV, a fake colorizer, a CLI runner.

Videos are built inside each test (64x48, a dozen frames) so no binary fixture is needed.
The fake colorizer stands in for ColorMNet; it is deterministic so tests can check pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import av
import numpy as np
from click.testing import CliRunner, Result

from colorize import engine
from colorize.cli import cli

WIDTH, HEIGHT = 64, 48


def gray_frames(count: int, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Flat gray RGB frames with distinct levels 10, 30, 50, ... so order is visible."""
    return [np.full((height, width, 3), 10 + (20 * i) % 240, np.uint8) for i in range(count)]


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: int = 24,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    audio_codec: str | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB ``frames`` (BT.709-tagged, converted with the BT.709 matrix).

    ``pts`` with ``time_base`` give each frame its own time (variable frame rate);
    ``audio_codec`` adds a second of a deterministic tone in that codec; ``options`` go to
    the encoder (e.g. ``{"x264-params": "keyint=6:min-keyint=6:scenecut=0"}`` for short GOPs).
    """
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps, options=options or {})
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = pix_fmt
        context = video.codec_context
        context.time_base = time_base if time_base is not None else Fraction(1, fps)
        context.color_primaries = context.color_trc = context.colorspace = 1
        context.color_range = 1
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if audio_codec is not None:
            audio = container.add_stream(audio_codec, rate=48000)
            audio.layout = "stereo"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG"
            )
            frame.pts = pts[index] if pts is not None else index
            frame.time_base = context.time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            for chunk in range(48):  # 48 x 1024 samples, about one second
                t = (np.arange(1024) + chunk * 1024) / 48000
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                samples = np.stack([tone, tone])
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                frame.sample_rate = 48000
                frame.pts = chunk * 1024
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


@dataclass
class DecodedVideo:
    frames: list[np.ndarray]
    times: list[float]
    rotations: list[int]
    codec: str
    color_tags: tuple[int, int, int, int]
    audio_codecs: list[str]


def read_video(path: Path) -> DecodedVideo:
    """Decode every frame of ``path`` to rgb24 with its time and rotation."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times, rotations = [], [], []
        tags = None
        for frame in container.decode(stream):
            if tags is None:
                tags = (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range)
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
            rotations.append(int(frame.rotation))
        audio = [s.codec_context.name for s in container.streams.audio]
        return DecodedVideo(frames, times, rotations, stream.codec_context.name, tags, audio)


def audio_packets(path: Path, stream_number: int = 0) -> list[bytes]:
    """Payload bytes of every packet of one audio stream, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[stream_number]
        return [bytes(p) for p in container.demux(stream) if p.size]


@dataclass
class FakeColorizer:
    """Test-only colorizer: keeps each pixel's luminance and adds the reference's mean tint.

    ``transform`` can be swapped (e.g. identity) and ``fail_after`` makes it raise mid-run.
    It records what it was given so tests can check the contract.
    """

    transform: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    fail_after: int | None = None
    failure: BaseException | None = None
    configs: list[engine.EngineConfig] = field(default_factory=list)
    seen_shapes: list[tuple[int, ...]] = field(default_factory=list)
    seen_frames: list[np.ndarray] = field(default_factory=list)
    reference: np.ndarray | None = None

    def colorize(self, frames: Iterable[np.ndarray], reference: np.ndarray) -> Iterator[np.ndarray]:
        self.reference = reference
        transform = self.transform or tint
        for index, frame in enumerate(frames):
            if self.fail_after is not None and index >= self.fail_after:
                raise self.failure or RuntimeError("fake failure")
            self.seen_shapes.append(frame.shape)
            self.seen_frames.append(frame.copy())
            yield transform(frame, reference)


def tint(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Gray level of the frame plus the reference's mean colour offset from its own gray."""
    luma = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    ref_mean = reference.reshape(-1, 3).mean(axis=0)
    offset = ref_mean - ref_mean @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luma[..., None] + offset), 0, 255).astype(np.uint8)


def identity(frame: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return frame.copy()


def invoke(args: Sequence[str], exit_code: int = 0) -> Result:
    """Run the CLI in-process; on an unexpected exit code show both streams and the error."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == exit_code, (
        f"exit {result.exit_code} != {exit_code}\nstdout: {result.stdout}\n"
        f"stderr: {result.stderr}"
    )
    return result


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders a failed run might have left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
