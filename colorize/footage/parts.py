"""The finished part of the output, kept inside the checkpoint folder until the run completes.

* PNG-frame output: the frames themselves, named as the final folder will name them, in
  ``frames/``; at the end the folder is renamed into place (no copy, no re-encode), so a resumed
  result is bit-identical.
* Video output: the video itself, in segments ``frames/segment-<first>.mp4``, one per checkpoint
  interval, each encoded with the output's codec and settings and starting with a keyframe
  (:class:`~colorize.video.sink.VideoFileSink` writing MP4, video only, times from 0). A segment is written
  under a temporary name and renamed when its interval is checkpointed: a ``kill -9`` leaves at
  most a temporary file, which the next run deletes. At the end the segments' packets are
  copied into the target with the input's audio and subtitles
  (:class:`~colorize.video.join.JoinedVideoSink`): no second encode, so checkpoints cost a
  video run little more than the saves themselves. The encoder gets the frames and times of an
  uninterrupted run; only where segments (and so keyframes) start depends on when checkpoints
  fell, which lossy encoding can show in the last bits.

Both write through the :class:`~colorize.video.sink.Sink` interface, so the pipeline does not
care which one it has.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from colorize.errors import CheckpointUnusableError, OutputWriteError
from colorize.files import sync_directory, sync_file
from colorize.video import images
from colorize.video.join import PART_MUXER, DtsOverlapError, JoinedVideoSink, open_part, part_packets
from colorize.video.sink import KEYFRAME_INTERVAL, Sink, VideoFileSink, frame_names, video_codec
from colorize.video.source import FrameMeta, Source
from colorize.video.target import OutputTarget

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".mp4"
SEGMENTS_KIND = "encoded-segments"


class CheckpointedParts(Sink):
    """A sink that writes into the checkpoint folder and can be made durable at any frame."""

    #: Fewest frames an automatic checkpoint leaves between two others (except at a cut).
    min_frames_between = 1

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
    """Finished frames as video segments in the output's own encoding, joined at the end."""

    def __init__(self, folder: Path, target: OutputTarget, source: Source,
                 reopen: Callable[[], Source], crf: int | None) -> None:
        super().__init__(folder)
        # Each checkpoint starts a segment, and so a keyframe: no more often than the encoder
        # puts one anyway, so that checkpoints do not grow the file.
        self.min_frames_between = KEYFRAME_INTERVAL[video_codec(target)]
        self._target = target
        self._source = source
        self._reopen = reopen
        self._crf = crf
        self._segments: list[dict] = []   # {"file", "first", "end", "last_pts", "origin"}
        self._open: tuple[VideoFileSink, Path, int] | None = None   # sink, final path, first
        self._written = 0                 # next frame index expected
        self._last_pts: int | None = None

    # -- writing -----------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        if meta.index != self._written:
            raise RuntimeError(f"frame {meta.index} arrived, expected {self._written}")
        if self._open is None:
            self._start_segment(meta.index)
        sink, _, _ = self._open
        sink.write(rgb, meta)
        self._written += 1

    def _start_segment(self, first: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"segment-{first:09d}{SEGMENT_SUFFIX}"
        # The codec and its settings follow the final target; the part is an MP4, video only.
        part = OutputTarget(path, "video", container_format=self._target.container_format)
        sink = VideoFileSink(part, self._source, self._crf, muxer=PART_MUXER,
                             side_streams=False, after_pts=self._last_pts, zero_based=True)
        self._open = (sink, path, first)

    def make_durable(self) -> dict:
        if self._open is not None:
            sink, path, first = self._open
            self._open = None
            sink.commit()                 # flushes the encoder, renames the part into place
            sync_file(path)
            self._last_pts = sink.last_pts
            origin = sink.origin
            self._segments.append({"file": path.name, "first": first, "end": self._written,
                                   "last_pts": self._last_pts,
                                   "origin": None if origin is None else str(origin)})
        sync_directory(self.folder)
        return {"kind": SEGMENTS_KIND, "segments": list(self._segments)}

    def resume(self, parts: dict, next_frame: int) -> None:
        segments = parts.get("segments")
        if parts.get("kind") == "video-segments":
            raise CheckpointUnusableError(
                f"checkpoint {self.folder.parent} was written by an earlier colorize (lossless "
                "segments), which this version cannot continue; delete that folder to start over")
        if parts.get("kind") != SEGMENTS_KIND or not isinstance(segments, list):
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
        self._last_pts = segments[-1].get("last_pts") if segments else None

    # -- the end -----------------------------------------------------------------------------

    def commit(self) -> None:
        """Join the segments into the target by copying their packets."""
        import av

        if self._open is not None:
            self.make_durable()
        if not self._segments:
            raise OutputWriteError("no frame was written; the output would be empty")
        logger.info("joining %d segments into %s", len(self._segments), self._target.path.name)
        try:
            self._join(av)
        except DtsOverlapError as error:
            logger.warning("the segments cannot be joined as they are (%s): encoding %s again "
                           "from them", error, self._target.path.name)
            self._encode_again(av)

    def _join(self, av) -> None:  # noqa: ANN001 - the PyAV module
        with self._reopen() as source, self._read(self._segments[0], av) as first:
            sink = JoinedVideoSink(self._target, source, first.streams.video[0])
            try:
                for segment, packet in self._each_segment(av, self._packets):
                    sink.write_packet(packet, Fraction(segment.get("origin") or 0))
                sink.commit()
            except BaseException:
                sink.abort()
                raise

    def _encode_again(self, av) -> None:  # noqa: ANN001 - the PyAV module
        """The fallback: decode the segments and encode the target from their frames."""
        with self._reopen() as source:
            sink = VideoFileSink(self._target, source, self._crf)
            try:
                metas = (frame.meta for frame in source.frames())
                for _, frame in self._each_segment(av, self._decoded):
                    meta = next(metas, None)
                    if meta is None:
                        raise self._changed_input()
                    sink.write(_to_rgb(frame), meta)
                sink.commit()
            except BaseException:
                sink.abort()
                raise

    def _each_segment(self, av, read):  # noqa: ANN001, ANN202 - PyAV module; a generator
        """``(segment, item)`` for every item ``read(part, segment, av)`` gives, segment after
        segment, checking that each segment holds the frames its record says."""
        for segment in self._segments:
            with self._read(segment, av) as part:
                count = 0
                for item in read(part, segment, av):
                    yield segment, item
                    count += 1
            self._check_count(segment, count)

    def _decoded(self, part, segment: dict, av):  # noqa: ANN001, ANN202 - PyAV objects
        for packet in self._packets(part, segment, av):
            yield from packet.decode()
        yield from part.streams.video[0].codec_context.decode(None)

    def _read(self, segment: dict, av):  # noqa: ANN001, ANN202 - the PyAV module; a container
        path = self.folder / segment["file"]
        try:
            return open_part(path)
        except (av.FFmpegError, OSError) as error:
            raise self._damaged(path, f"unreadable ({error})") from None

    def _packets(self, part, segment: dict, av):  # noqa: ANN001, ANN202
        try:
            yield from part_packets(part)
        except (av.FFmpegError, OSError) as error:
            raise self._damaged(self.folder / segment["file"], f"unreadable ({error})") from None

    def _check_count(self, segment: dict, count: int) -> None:
        wanted = segment["end"] - segment["first"]
        if count != wanted:
            raise self._damaged(self.folder / segment["file"],
                                f"holds {count} frames, expected {wanted}")

    def _damaged(self, path: Path, what: str) -> CheckpointUnusableError:
        return CheckpointUnusableError(
            f"checkpoint {self.folder.parent} is damaged: segment {path.name} {what}; delete "
            "that folder to start over")

    def _changed_input(self) -> CheckpointUnusableError:
        return CheckpointUnusableError(
            f"the input now has fewer frames than the checkpoint {self.folder.parent} "
            f"({self._written}); delete that folder to start over")

    def abort(self) -> None:
        """Drop an unfinished segment (its temporary file); durable ones stay for a resume."""
        if self._open is not None:
            sink, _, _ = self._open
            self._open = None
            sink.abort()


def _to_rgb(frame) -> np.ndarray:  # noqa: ANN001 - a PyAV VideoFrame
    # Back with the BT.709 matrix VideoFileSink encoded it with.
    return frame.to_ndarray(format="rgb24", src_colorspace="ITU709")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
