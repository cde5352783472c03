"""Input side: a video file (PyAV), a folder of numbered images, or a single image.

Every source decodes lazily, one frame at a time, and yields :class:`Frame` objects holding an
(H, W, 3) uint8 RGB array in the *stored* orientation plus the metadata the writer needs to
keep timing (pts, time base) and naming (the input file name of an image frame).

Video files are demuxed in one pass: video packets are decoded, audio and subtitle packets are
queued untouched on the source so the writer can copy them, interleaved by time.

:meth:`Source.frames_from` starts at any frame with the numbers a decode from the start gives:
a video file seeks to the keyframe before it and checks the frames' timestamps against a
:class:`~colorize.video.seek.SeekAnchor` (see :mod:`colorize.video.seek`), and decodes from
the start, with a warning, where that cannot be done exactly.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

import numpy as np

from colorize.errors import (
    CorruptInputError,
    InputNotFoundError,
    NoVideoStreamError,
    UnsupportedInputError,
)
from colorize.video import images
from colorize.video.seek import (
    MP4_FORMAT,
    FrameIndex,
    NotSeekableError,
    SeekAnchor,
    scan_frame_index,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; av is imported lazily
    import av

logger = logging.getLogger(__name__)

SourceKind = Literal["video", "image_folder", "image"]

#: Frame rate given to image input when it is written as a video and no --fps is set.
DEFAULT_IMAGE_FPS = Fraction(25)

# FFmpeg colour numbering (AVCOL_*): see VIDEO-IO-FACTS section 7.
_UNSPECIFIED = 2
_HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG"}
# Untagged material this tall is almost always BT.709 (HD); smaller is usually BT.601 (SD).
_HD_MIN_HEIGHT = 720

# Seconds before a keyframe to seek to again when a seek lands after it.
_SEEK_MARGINS = (0, 1, 4, 16)

# FFmpeg's name for the demuxer that reads MP4/MOV: the only one whose frame index is exact.
_INDEXED_FORMAT = MP4_FORMAT


@dataclass(frozen=True)
class FrameMeta:
    """Where a frame sits in the input: its order, timing and (for images) file name."""

    index: int
    pts: int | None
    time_base: Fraction | None
    name: str | None = None
    keyframe: bool = False      # decoding may start here (video keyframes, every image)


@dataclass
class Frame:
    """One decoded frame: ``rgb`` is (H, W, 3) uint8 in the stored orientation."""

    rgb: np.ndarray
    meta: FrameMeta


@dataclass(frozen=True)
class SourceInfo:
    """What is known about the input before its frames are read.

    ``width``/``height`` are the stored frame size; ``rotation`` is the display rotation in
    degrees counter-clockwise (FFmpeg's convention, 0 for images), so the picture a viewer
    sees is ``np.rot90(rgb, k=rotation // 90)``.
    """

    path: Path
    kind: SourceKind
    width: int
    height: int
    rotation: int = 0
    frame_count: int | None = None
    frame_count_is_estimate: bool = False
    average_rate: Fraction | None = None
    time_base: Fraction | None = None
    sample_aspect_ratio: Fraction | None = None
    codec_name: str | None = None
    file_names: tuple[str, ...] = ()

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) of the picture as displayed, after rotation."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


class _LibavLogCapture(logging.Handler):
    """Collects FFmpeg's own error lines, which are the only sign of some truncations."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 100:
            self.messages.append(record.getMessage())


def open_source(path: Path, image_fps: Fraction = DEFAULT_IMAGE_FPS) -> "Source":
    """Open ``path`` as the right kind of source; raises a :mod:`colorize.errors` error."""
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if not os.access(path, os.R_OK):
        raise InputNotFoundError(f"input is not readable (permission denied): {path}")
    if path.is_dir():
        return ImageSequenceSource.from_folder(path, image_fps)
    if path.suffix.lower() in images.IMAGE_EXTENSIONS:
        return ImageSequenceSource.from_files(path, [path], image_fps, kind="image")
    return VideoFileSource(path)


class Source:
    """Common interface of all inputs."""

    info: SourceInfo

    def frames(self) -> Iterator[Frame]:
        """Every frame, from the first."""
        return self.frames_from(0)

    def frames_from(self, start: int, anchor: SeekAnchor | None = None) -> Iterator[Frame]:
        """Frames ``start``, ``start + 1``, ... numbered as :meth:`frames` numbers them.

        ``anchor`` (a video file) says where decoding may start and which timestamps follow;
        without one the source finds its own.
        """
        raise NotImplementedError

    def pending_packets(self, until_seconds: float | None) -> list["av.Packet"]:
        """Queued audio/subtitle packets up to ``until_seconds`` (all when ``None``)."""
        return []

    def close(self) -> None:
        """Release the input file."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ImageSequenceSource(Source):
    """A folder of images in natural name order, or a single image, as a clip."""

    def __init__(self, info: SourceInfo, files: list[Path]) -> None:
        self.info = info
        self._files = files

    @classmethod
    def from_folder(cls, folder: Path, fps: Fraction) -> "ImageSequenceSource":
        files = images.list_image_files(folder)
        if not files:
            raise NoVideoStreamError(
                f"folder has no image files ({', '.join(sorted(images.IMAGE_EXTENSIONS))}): "
                f"{folder}"
            )
        return cls.from_files(folder, files, fps, kind="image_folder")

    @classmethod
    def from_files(
        cls, path: Path, files: list[Path], fps: Fraction, kind: SourceKind
    ) -> "ImageSequenceSource":
        # Check every header up front (cheap) so a bad file fails before hours of work.
        sizes: list[tuple[int, int]] = []
        for index, file in enumerate(files):
            try:
                sizes.append(images.read_image_size(file))
            except images.ImageTooLargeError as error:
                raise UnsupportedInputError(f"{file.name}: {error}") from None
            except OSError as error:
                if kind == "image":
                    raise InputNotFoundError(
                        f"cannot read input image {file}: {_short(error)}"
                    ) from None
                raise CorruptInputError(
                    f"cannot read frame {file.name} in {path}: {_short(error)} "
                    "(found while checking the frames; 0 frames decoded)",
                    frames_decoded=0,
                ) from None
        first = sizes[0]
        for file, size in zip(files, sizes):
            if size != first:
                raise UnsupportedInputError(
                    f"images in {path} differ in size: {files[0].name} is "
                    f"{first[0]}x{first[1]} but {file.name} is {size[0]}x{size[1]}; "
                    "resize them to one size first"
                )
        info = SourceInfo(
            path=path,
            kind=kind,
            width=first[0],
            height=first[1],
            frame_count=len(files),
            average_rate=fps,
            time_base=1 / fps,
            file_names=tuple(f.name for f in files),
        )
        return cls(info, files)

    def frames_from(self, start: int, anchor: SeekAnchor | None = None) -> Iterator[Frame]:
        time_base = self.info.time_base
        for index, file in enumerate(self._files[start:], start=max(0, start)):
            try:
                rgb = images.load_image_rgb(file)
            except (OSError, images.ImageTooLargeError) as error:
                raise CorruptInputError(
                    f"cannot decode frame {file.name}: {_short(error)} "
                    f"({index} frames decoded before it)",
                    frames_decoded=index,
                ) from None
            yield Frame(rgb, FrameMeta(index=index, pts=index, time_base=time_base, name=file.name,
                                       keyframe=True))


class VideoFileSource(Source):
    """Any file FFmpeg can demux; decodes the first video stream that is not cover art."""

    def __init__(self, path: Path) -> None:
        import av

        _enable_ffmpeg_error_text()
        self._av = av
        self._path = path
        self._capture = _LibavLogCapture()
        self._pending: deque[av.Packet] = deque()
        #: Frames the decoder has produced so far, those skipped on the way to a frame included.
        self.decoded_frames = 0
        self._index: FrameIndex | None = None
        self._not_seekable: str | None = None     # why the packets cannot give an index
        self._at_start = True                     # the decoder has given only the first frame
        try:
            # A resolved path: relative names with a colon would be read as a URL scheme.
            self._container = av.open(str(path.resolve()), metadata_errors="replace")
        except PermissionError:
            raise InputNotFoundError(f"input is not readable (permission denied): {path}") from None
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
            raise InputNotFoundError(
                f"cannot read {path} as video: {_short(error)}; is it a video file?"
            ) from None
        try:
            self._video = self._pick_video_stream(path)
            self._side_streams = list(self._container.streams.audio) + list(
                self._container.streams.subtitles
            )
            self._start_decoding()
            self.info = self._describe(path)
        except BaseException:
            self._container.close()
            raise

    def _start_decoding(self) -> None:
        self._video.thread_type = "AUTO"  # must be set before the first decode
        self._frames = self._decode_all()
        self._first = self._read_first_frame(self.path)
        self._at_start = True

    @property
    def path(self) -> Path:
        return self._path

    @property
    def container(self) -> "av.container.InputContainer":
        return self._container

    @property
    def video_stream(self) -> "av.VideoStream":
        return self._video

    @property
    def side_streams(self) -> list["av.stream.Stream"]:
        """Audio and subtitle streams whose packets are queued for the writer."""
        return self._side_streams

    def _pick_video_stream(self, path: Path) -> "av.VideoStream":
        attached_pic = self._av.stream.Disposition.attached_pic
        for stream in self._container.streams.video:
            if not stream.disposition & attached_pic:
                return stream
        what = "only cover art" if self._container.streams.video else "no video stream"
        raise NoVideoStreamError(f"input has {what}: {path}")

    def _read_first_frame(self, path: Path) -> "av.VideoFrame":
        first = next(self._frames, None)
        if first is None:
            raise CorruptInputError(f"no frame could be decoded from {path}", frames_decoded=0)
        return first

    def _describe(self, path: Path) -> SourceInfo:
        video, first = self._video, self._first
        count, estimate = self._frame_count()
        transfer = first.color_trc
        if transfer in _HDR_TRANSFERS:
            logger.warning(
                "input is HDR (%s); it is converted to 8-bit BT.709 without tone mapping, "
                "so colours and brightness will look off",
                _HDR_TRANSFERS[transfer],
            )
        return SourceInfo(
            path=path,
            kind="video",
            width=first.width,
            height=first.height,
            rotation=int(round(first.rotation or 0)),
            frame_count=count,
            frame_count_is_estimate=estimate,
            # Untimed streams (raw H.264) get times from the rate: the SPS-based guess is right
            # there, while average_rate is FFmpeg's default 25.
            average_rate=(
                video.guessed_rate
                if first.pts is None and video.guessed_rate
                else video.average_rate or video.guessed_rate
            ),
            time_base=video.time_base,
            sample_aspect_ratio=video.codec_context.sample_aspect_ratio,
            codec_name=video.codec_context.name,
        )

    def _frame_count(self) -> tuple[int | None, bool]:
        video = self._video
        if video.frames and self._container.format.name == _INDEXED_FORMAT:
            return int(video.frames), False
        rate = video.average_rate or video.guessed_rate
        if video.duration and video.time_base and rate:
            return max(1, round(float(video.duration * video.time_base * rate))), True
        if self._container.duration and rate:
            return max(1, round(self._container.duration / 1_000_000 * float(rate))), True
        if video.frames:
            return int(video.frames), True
        return None, True

    def frames_from(self, start: int, anchor: SeekAnchor | None = None) -> Iterator[Frame]:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if start == 0:
            frames = self._from_the_start(0)
        else:
            frames = self._reach(start, anchor)
        width, height = self._first.width, self._first.height
        index = start
        for frame in frames:
            if (frame.width, frame.height) != (width, height):
                raise UnsupportedInputError(
                    f"the frame size changes at frame {index} from {width}x{height} to "
                    f"{frame.width}x{frame.height}; split the video where it changes"
                )
            meta = FrameMeta(index, frame.pts, frame.time_base, keyframe=bool(frame.key_frame))
            yield Frame(_to_rgb(frame), meta)
            index += 1
        self._check_complete(index)

    # -- seeking -----------------------------------------------------------------------------

    def frame_index(self) -> FrameIndex | None:
        """This file's frame index from a packet scan (read once, kept), or None when its
        packets cannot number the frames exactly (:attr:`not_seekable` says why)."""
        if self._index is None and self._not_seekable is None:
            try:
                self.use_frame_index(scan_frame_index(self._path, self._video.index))
            except NotSeekableError as error:
                self._not_seekable = str(error)
        return self._index

    @property
    def not_seekable(self) -> str | None:
        return self._not_seekable

    def set_not_seekable(self, reason: str) -> None:
        """Known elsewhere (a batch's cuts task): this file's packets give no index."""
        self._index, self._not_seekable = None, reason

    def use_frame_index(self, index: FrameIndex) -> None:
        """Seek with ``index`` (a scan of this file made elsewhere, e.g. by a batch's cuts
        task) instead of scanning; refused (NotSeekableError) when the decoder disagrees."""
        if self._first.pts != index.pts[0]:
            raise NotSeekableError(f"the first decoded frame has pts {self._first.pts}, the "
                                   f"first packet {index.pts[0]}")
        self._index = index

    def _reach(self, start: int, anchor: SeekAnchor | None) -> Iterator["av.VideoFrame"]:
        """Decoded frames from frame ``start`` on: after a seek when one can be made exactly,
        else from the start of the file."""
        if anchor is None or not anchor.reaches(start):
            index = self.frame_index()
            if index is not None and start < index.frame_count:
                anchor = index.anchor_for(start)
            else:
                anchor = None
                reason = self._not_seekable or "the frame is past the indexed frames"
        if anchor is not None and anchor.frame == 0:
            return self._from_the_start(start)      # the frame is in the first GOP
        if anchor is not None:
            frames, reason = self._seek(anchor, start)
            if frames is not None:
                return frames
        logger.warning("%s: cannot seek exactly to frame %d (%s); decoding from the start",
                       self._path.name, start, reason)
        return self._from_the_start(start)

    def _seek(self, anchor: SeekAnchor,
              start: int) -> tuple[Iterator["av.VideoFrame"] | None, str]:
        """Frames from ``start`` after a seek to ``anchor``, or (None, why) when the frames
        after the seek do not carry the anchor's timestamps."""
        expected = anchor.pts
        self._at_start = False
        try:
            frame, reason = None, ""
            for seconds_before in _SEEK_MARGINS:
                # Demuxers without an index (MPEG-TS) may land after the keyframe: seeking again
                # a little earlier costs some frames decoded, never a wrong one.
                margin = round(seconds_before / self._video.time_base) if self._video.time_base \
                    else 0
                frame, reason = self._land(expected[0] - margin, expected[0])
                if frame is not None and frame.pts == expected[0]:
                    break
                if frame is not None and frame.pts is None:
                    return None, "a frame after the seek has no timestamp"
            else:
                return None, f"after the seek to frame {anchor.frame}: {reason}"
            frames = self._frames
            for position in range(anchor.frame + 1, start + 1):
                frame = next(frames, None)
                offset = position - anchor.frame
                if frame is None and position == start and offset >= len(expected):
                    return iter(()), ""      # the frames up to the start were all there: the end
                if frame is None or (offset < len(expected) and frame.pts != expected[offset]):
                    got = "no frame" if frame is None else f"pts {frame.pts}"
                    return None, f"frame {position} after the seek has {got}, expected pts " \
                        f"{expected[offset] if offset < len(expected) else '(any)'}"
        except CorruptInputError as error:
            return None, f"decoding after the seek failed ({error})"
        # What the decoder said about the frames before the keyframe it started from (references
        # it never saw) is not about any frame this run gives out.
        self._capture.messages.clear()
        logger.debug("%s: seeked to the keyframe at frame %d for frame %d (%d frames decoded)",
                     self._path.name, anchor.frame, start, self.decoded_frames)
        return _chain_one(frame, frames), ""

    def _land(self, target: int, wanted: int) -> tuple["av.VideoFrame | None", str]:
        """Seek to the keyframe at or before ``target`` and decode up to the first frame shown
        at ``wanted`` or later (earlier ones: another GOP, an open GOP's leading pictures)."""
        av = self._av
        self._frames.close()
        self._pending.clear()
        try:
            self._container.seek(target, stream=self._video, backward=True)
        except (av.FFmpegError, OSError, ValueError) as error:
            return None, f"the seek failed: {_short(error)}"
        self._frames = frames = self._decode_all()
        frame = next(frames, None)
        while frame is not None and frame.pts is not None and frame.pts < wanted:
            frame = next(frames, None)
        if frame is None:
            return None, "no frame came"
        return frame, f"came pts {frame.pts}, not {wanted}"

    def _from_the_start(self, start: int) -> Iterator["av.VideoFrame"]:
        """Decoded frames from frame ``start`` on, decoding (and dropping) every frame before."""
        if not self._at_start:
            self._reopen()
        self._at_start = False
        frames = _chain_one(self._first, self._frames)
        for _ in range(start):
            if next(frames, None) is None:
                break
        return frames

    def _reopen(self) -> None:
        """The file opened again: the decoder at its first frame (no seek to trust)."""
        av = self._av
        video_index = self._video.index
        side = {stream.index for stream in self._side_streams}
        self.close()
        self._pending.clear()
        self._container = av.open(str(self._path.resolve()), metadata_errors="replace")
        self._video = self._container.streams.get(video_index)[0]
        self._side_streams = [stream for stream in self._container.streams if stream.index in side]
        self._start_decoding()

    def _decode_all(self) -> Iterator["av.VideoFrame"]:
        av = self._av
        decoded = 0
        libav_logger = logging.getLogger("libav")
        libav_logger.addHandler(self._capture)
        try:
            for packet in self._container.demux(self._video, *self._side_streams):
                if packet.stream is not self._video:
                    # Empty packets only mark a stream's end; the writer must not see them.
                    if packet.size:
                        self._pending.append(packet)
                    continue
                for frame in packet.decode():
                    decoded += 1
                    self.decoded_frames += 1
                    yield frame
        except (av.FFmpegError, EOFError, ValueError, OSError) as error:
            raise CorruptInputError(
                f"input stream is corrupt or truncated after {decoded} decoded frames: "
                f"{_short(error)}",
                frames_decoded=decoded,
            ) from None
        finally:
            libav_logger.removeHandler(self._capture)

    def _check_complete(self, decoded: int) -> None:
        indexed = self._video.frames
        if self._container.format.name == _INDEXED_FORMAT and indexed and decoded < indexed:
            raise CorruptInputError(
                f"input is truncated: {decoded} of {indexed} frames decoded",
                frames_decoded=decoded,
            )
        if any("partial file" in message for message in self._capture.messages):
            raise CorruptInputError(
                f"input is truncated (FFmpeg: partial file) after {decoded} frames",
                frames_decoded=decoded,
            )
        if self._capture.messages:
            logger.warning(
                "the decoder reported %d problem(s), first: %s; the output may show glitches",
                len(self._capture.messages),
                self._capture.messages[0],
            )

    def pending_packets(self, until_seconds: float | None) -> list["av.Packet"]:
        taken: list[av.Packet] = []
        while self._pending:
            packet = self._pending[0]
            if until_seconds is not None and packet_seconds(packet) > until_seconds:
                break
            taken.append(self._pending.popleft())
        return taken

    def drain(self) -> None:
        """Demux to the end so every remaining audio/subtitle packet is queued."""
        for _ in self._frames:
            pass

    def close(self) -> None:
        self._frames.close()
        # With frame threading, freeing a decoder whose threads still hold queued packets can
        # deadlock inside FFmpeg (seen when a run stops reading early: a shot task, an error):
        # draining it first leaves every thread idle.
        try:
            for _ in self._video.codec_context.decode(None):
                pass
        except (self._av.FFmpegError, EOFError, ValueError):
            pass
        self._container.close()


def _to_rgb(frame: "av.VideoFrame") -> np.ndarray:
    """Convert to rgb24 honouring the frame's colour tags (see VIDEO-IO-FACTS section 7)."""
    if frame.colorspace == _UNSPECIFIED and frame.height >= _HD_MIN_HEIGHT:
        return frame.to_ndarray(format="rgb24", src_colorspace="ITU709")
    return frame.to_ndarray(format="rgb24")


def packet_seconds(packet: "av.Packet") -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    if stamp is None or packet.time_base is None:
        return float("-inf")  # untimed: send as soon as possible
    return float(stamp * packet.time_base)


def _chain_one(
    first: "av.VideoFrame", rest: Iterator["av.VideoFrame"]
) -> Iterator["av.VideoFrame"]:
    yield first
    yield from rest


def _enable_ffmpeg_error_text() -> None:
    """Let FFmpeg's error lines reach Python logging so exceptions carry the real reason."""
    import av.logging

    if av.logging.get_level() is None:
        av.logging.set_level(av.logging.ERROR)


def _short(error: BaseException) -> str:
    """One line of an exception's text, without errno noise."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text
