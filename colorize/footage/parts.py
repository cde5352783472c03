"""The finished part of the output, kept inside the checkpoint folder until the run completes.

* PNG-frame output: the frames themselves, named as the final folder will name them, in
  ``frames/``; at the end the folder is renamed into place (no copy, no re-encode), so a resumed
  result is bit-identical.
* Video output: the frames in lossless segments, ``frames/segment-<first>-<end>.nut`` (Ut Video
  8-bit RGB, so the round trip is exact), one per checkpoint interval. A segment is written
  under a temporary name and renamed when its interval is checkpointed: a ``kill -9`` leaves at
  most a temporary file, which the next run deletes. At the end the video is encoded from the
  segments by the very same :class:`~colorize.video.sink.VideoFileSink` the normal path uses,
  fed with the input's own frame times and audio (the input is demuxed again), so the encoder
  sees the frames, timestamps and audio packets of an uninterrupted run.

Both write through the :class:`~colorize.video.sink.Sink` interface, so the pipeline does not
care which one it has.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from colorize.errors import CheckpointUnusableError, OutputWriteError
from colorize.footage.checkpoint import sync_directory, sync_file
from colorize.video import images
from colorize.video.sink import Sink, VideoFileSink, frame_names
from colorize.video.source import FrameMeta, Source
from colorize.video.target import OutputTarget

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".nut"
# Ut Video keeps 8-bit RGB (as planar gbrp) exactly and is the fastest lossless codec of the
# wheel that still compresses: at 448x448 27 ms to write and 30 ms to read a frame, against
# 100 + 110 ms for FFV1 at about the same size (raw frames are 2x larger). NUT takes any codec
# and time base; bitexact keeps the muxer from writing anything run-dependent.
_SEGMENT_CODEC = "utvideo"
_SEGMENT_CONTAINER = "nut"
_SEGMENT_PIX_FMT = "gbrp"


class CheckpointedParts(Sink):
    """A sink that writes into the checkpoint folder and can be made durable at any frame."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def make_durable(self) -> dict:
        """Flush everything written so far to disk; return the JSON the record keeps."""
        raise NotImplementedError

    def resume(self, parts: dict, next_frame: int) -> None:
        """Drop anything written after the checkpoint that ``parts`` describes."""
        raise NotImplementedError


class PngParts(CheckpointedParts):
    """Finished PNG frames, named as in the final folder."""

    def __init__(self, folder: Path, target: OutputTarget, source: Source) -> None:
        super().__init__(folder)
        self._target = target
        self._names = frame_names(source.info)
        self._unsynced: list[Path] = []

    def name(self, index: int) -> str:
        return self._names.get(index, f"{index:06d}.png")

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        if not self._unsynced:
            self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / self.name(meta.index)
        try:
            images.save_image(rgb, path, "PNG")
        except OSError as error:
            raise OutputWriteError(f"cannot write frame {path.name}: {error}") from None
        self._unsynced.append(path)

    def make_durable(self) -> dict:
        for path in self._unsynced:
            sync_file(path)
        self._unsynced.clear()
        sync_directory(self.folder)
        return {"kind": "png"}

    def resume(self, parts: dict, next_frame: int) -> None:
        if parts.get("kind") != "png":
            raise CheckpointUnusableError(f"checkpoint {self.folder.parent} holds another kind "
                                          "of output; delete that folder to start over")
        missing = [self.name(i) for i in range(next_frame) if not (self.folder / self.name(i)).is_file()]
        if missing:
            raise CheckpointUnusableError(
                f"checkpoint {self.folder.parent} is damaged: finished frame {missing[0]} is "
                "missing; delete that folder to start over")
        keep = {self.name(i) for i in range(next_frame)}
        for path in self.folder.iterdir():
            if path.name not in keep:
                _remove(path)

    def commit(self) -> None:
        target = self._target.path
        if not target.exists():
            os.replace(self.folder, target)
            return
        # --overwrite of an existing folder: move the old one aside so a failure can restore it.
        old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
        os.replace(target, old)
        try:
            os.replace(self.folder, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Keep the frames: the checkpoint folder owns them (a later run may resume)."""


class VideoSegmentParts(CheckpointedParts):
    """Finished frames in lossless segments; the video is encoded from them at the end."""

    def __init__(self, folder: Path, target: OutputTarget, reopen: Callable[[], Source],
                 crf: int | None) -> None:
        import av

        super().__init__(folder)
        self._av = av
        self._target = target
        self._reopen = reopen
        self._crf = crf
        self._segments: list[dict] = []        # {"file", "first", "end"} of durable segments
        self._open: tuple[object, object, Path, int] | None = None  # container, stream, temp, first
        self._written = 0                      # next frame index expected

    # -- writing -----------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        av = self._av
        if meta.index != self._written:
            raise RuntimeError(f"frame {meta.index} arrived, expected {self._written}")
        if self._open is None:
            self._start_segment(rgb.shape[1], rgb.shape[0], meta.index)
        container, stream, temp, first = self._open
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=_SEGMENT_PIX_FMT)
        frame.pts = meta.index - first
        try:
            container.mux(stream.encode(frame))
        except (av.FFmpegError, OSError) as error:
            raise OutputWriteError(f"cannot write to {temp}: {error}") from None
        self._written += 1

    def _start_segment(self, width: int, height: int, first: int) -> None:
        av = self._av
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = self.folder / f".segment-{first:09d}.partial{SEGMENT_SUFFIX}"
        try:
            container = av.open(str(temp.absolute()), "w", format=_SEGMENT_CONTAINER,
                                options={"fflags": "+bitexact"})
            stream = container.add_stream(_SEGMENT_CODEC, rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, _SEGMENT_PIX_FMT
        except (av.FFmpegError, OSError, ValueError) as error:
            raise OutputWriteError(f"cannot create {temp}: {error}") from None
        self._open = (container, stream, temp, first)

    def make_durable(self) -> dict:
        av = self._av
        if self._open is not None:
            container, stream, temp, first = self._open
            self._open = None
            try:
                container.mux(stream.encode(None))
                container.close()
            except (av.FFmpegError, OSError) as error:
                raise OutputWriteError(f"cannot finish {temp}: {error}") from None
            sync_file(temp)
            name = f"segment-{first:09d}-{self._written:09d}{SEGMENT_SUFFIX}"
            os.replace(temp, self.folder / name)
            self._segments.append({"file": name, "first": first, "end": self._written})
        sync_directory(self.folder)
        return {"kind": "video-segments", "segments": list(self._segments)}

    def resume(self, parts: dict, next_frame: int) -> None:
        segments = parts.get("segments")
        if parts.get("kind") != "video-segments" or not isinstance(segments, list):
            raise CheckpointUnusableError(f"checkpoint {self.folder.parent} holds another kind "
                                          "of output; delete that folder to start over")
        expected = 0
        for segment in segments:
            path = self.folder / str(segment.get("file"))
            if segment.get("first") != expected or not path.is_file() or path.parent != self.folder:
                raise CheckpointUnusableError(
                    f"checkpoint {self.folder.parent} is damaged: segment {segment.get('file')} "
                    "is missing or out of order; delete that folder to start over")
            expected = segment["end"]
        if expected != next_frame:
            raise CheckpointUnusableError(
                f"checkpoint {self.folder.parent} is damaged: its segments end at frame "
                f"{expected}, its position is {next_frame}; delete that folder to start over")
        keep = {segment["file"] for segment in segments}
        for path in self.folder.iterdir():
            if path.name not in keep:
                _remove(path)
        self._segments = [dict(segment) for segment in segments]
        self._written = next_frame

    # -- the end -----------------------------------------------------------------------------

    def stored_frames(self) -> Iterator[np.ndarray]:
        av = self._av
        for segment in self._segments:
            path = self.folder / segment["file"]
            count = 0
            try:
                with av.open(str(path.absolute()), format=_SEGMENT_CONTAINER) as container:
                    for frame in container.decode(video=0):
                        count += 1
                        yield frame.to_ndarray(format="rgb24")
            except (av.FFmpegError, OSError) as error:
                raise CheckpointUnusableError(
                    f"checkpoint {self.folder.parent} is damaged: segment {path.name} unreadable "
                    f"({error}); delete that folder to start over") from None
            if count != segment["end"] - segment["first"]:
                raise CheckpointUnusableError(
                    f"checkpoint {self.folder.parent} is damaged: segment {path.name} holds "
                    f"{count} frames, expected {segment['end'] - segment['first']}; delete that "
                    "folder to start over")

    def commit(self) -> None:
        """Encode the output from the segments, exactly as the normal path would have."""
        if self._open is not None:
            self.make_durable()
        logger.info("encoding %s from %d finished frames", self._target.path.name, self._written)
        with self._reopen() as source:
            sink = VideoFileSink(self._target, source, self._crf)
            try:
                stored = self.stored_frames()
                written = 0
                for frame in source.frames():
                    rgb = next(stored, None)
                    if rgb is None:
                        break
                    sink.write(rgb, frame.meta)
                    written += 1
                if written != self._written or next(stored, None) is not None:
                    raise CheckpointUnusableError(
                        f"the input now has a different number of frames than the checkpoint "
                        f"{self.folder.parent} ({self._written}); delete that folder to start over")
                sink.commit()
            except BaseException:
                sink.abort()
                raise

    def abort(self) -> None:
        """Close an unfinished segment; its temporary file is dropped on resume."""
        if self._open is not None:
            container, _, temp, _ = self._open
            self._open = None
            try:
                container.close()
            except Exception:  # noqa: BLE001 - the partial segment is discarded anyway
                logger.debug("closing a partial segment failed", exc_info=True)
            temp.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
