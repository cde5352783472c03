"""Shots encoded one by one into parts, and the output put together from the parts.

A part holds the colorized frames of one shot: for a video output the shot already encoded in
the output's codec and settings, an MP4 with the video only and its times from 0, its start time
in ``<part>.json`` beside it (:class:`EncodedPartWriter`); for PNG frames, lossless frames
(:class:`PartWriter`, FFV1 in Matroska, RGB). :func:`join_encoded_parts` copies the video parts'
packets into the output with the input's audio (no second encode, see
:mod:`colorize.video.join`); :func:`write_frames_of_parts` writes PNG frames from the lossless
ones. ``colorize batch --shots`` spreads the parts over its workers; ``colorize --keep-shots``
keeps them beside the output and encodes only the shots that changed
(:mod:`colorize.footage.shot_cache`).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from colorize.errors import UnsupportedInputError
from colorize.files import replace_file


def join_encoded_parts(parts: list[Path], target: Any, source: Any) -> int:
    """The output from the shots' packets, with the input's audio (no decode, no encode)."""
    from colorize.video.join import JoinedVideoSink, open_part, part_packets

    with open_part(parts[0]) as first:
        sink = JoinedVideoSink(target, source, first.streams.video[0])
        written = 0
        try:
            for path in parts:
                origin = EncodedPartWriter.origin_of(path)
                with open_part(path) as part:
                    for packet in part_packets(part):
                        sink.write_packet(packet, origin)
                        written += 1
            if source.info.frame_count is not None and not source.info.frame_count_is_estimate \
                    and written != source.info.frame_count:
                raise UnsupportedInputError(
                    f"the shots hold {written} frames but the input has {source.info.frame_count}")
            sink.commit()
        except BaseException:
            sink.abort()
            raise
    return written


def write_frames_of_parts(parts: list[Path], target: Any, source: Any, crf: Any) -> int:
    """PNG frames (or an image) from lossless parts, named and timed from the input."""
    from colorize.video.sink import open_sink

    sink = open_sink(target, source, crf=crf)
    frames = part_frames(parts)
    written = 0
    try:
        for frame in source.frames():
            rgb = next(frames, None)
            if rgb is None:
                raise UnsupportedInputError(f"the shots hold {written} frames but the input has more")
            sink.write(rgb, frame.meta)
            written += 1
        if next(frames, None) is not None:
            raise UnsupportedInputError(f"the shots hold more frames than the input's {written}")
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return written


def part_writer(path: Path, target: Any, source: Any, crf: Any) -> "EncodedPartWriter | PartWriter":
    """The writer of one shot's part for ``target``'s kind of output."""
    if target.kind == "video":
        return EncodedPartWriter(path, target, source, crf)
    return PartWriter(path)


class EncodedPartWriter:
    """One shot encoded as the output will be (codec, settings, stored orientation), an MP4
    with the video only and its times from 0; ``<part>.json`` beside it keeps the shot's start
    time. Both appear only when complete, so a retried shot never leaves half a part."""

    def __init__(self, path: Path, target: Any, source: Any, crf: Any) -> None:
        from colorize.video.join import PART_MUXER
        from colorize.video.sink import VideoFileSink
        from colorize.video.target import OutputTarget

        self.path = path
        self.count = 0
        self._rotation = source.info.rotation
        part = OutputTarget(path, "video", container_format=target.container_format)
        self._sink = VideoFileSink(part, source, crf, muxer=PART_MUXER, side_streams=False,
                                   zero_based=True)

    def __enter__(self) -> "EncodedPartWriter":
        return self

    def write(self, rgb: np.ndarray, meta: Any) -> None:
        from colorize.pipeline import to_stored

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink.write(to_stored(rgb, self._rotation), meta)
        self.count += 1

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        from colorize.footage.checkpoint import write_atomically

        if kind is not None or not self.count:
            self._sink.abort()
            return
        self._sink.commit()
        origin = self._sink.origin
        write_atomically(self._sidecar(self.path), json.dumps(
            {"frames": self.count, "origin": None if origin is None else str(origin)}).encode())

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    @classmethod
    def origin_of(cls, path: Path) -> Fraction:
        try:
            origin = json.loads(cls._sidecar(path).read_text(encoding="utf-8"))["origin"]
        except (OSError, ValueError, KeyError) as error:
            raise UnsupportedInputError(f"shot part {path.name} is incomplete ({error})") from None
        return Fraction(origin or 0)


class PartWriter:
    """Frames of one shot, lossless (FFV1 in Matroska, RGB), written to a temporary name and
    renamed when complete so a retried shot never reads half a part."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._temp = path.with_name(f".{path.name}.{os.getpid()}.partial.mkv")
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> "PartWriter":
        return self

    def write(self, rgb: np.ndarray, meta: Any = None) -> None:
        import av

        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self._temp), "w", format="matroska")
            self._stream = self._container.add_stream("ffv1", rate=25)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "bgr0"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="bgr0")
        frame.pts = self.count
        self._container.mux(self._stream.encode(frame))
        self.count += 1

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self._container is None:
            return
        if kind is None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            replace_file(self._temp, self.path)
        else:
            self._container.close()
            self._temp.unlink(missing_ok=True)


def part_frames(parts: list[Path]) -> Iterator[np.ndarray]:
    """The RGB frames of lossless parts, in order."""
    import av

    for part in parts:
        with av.open(str(part)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
