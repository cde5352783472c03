"""Output side, part 2: write colorized frames atomically.

Every sink writes into a temporary path beside the target (same filesystem) and renames it
into place in :meth:`Sink.commit`; :meth:`Sink.abort` deletes the temporary path. So after any
failure, Ctrl-C included, nothing new is left at the target path.

:class:`VideoFileSink` keeps the input's timestamps, rotation, pixel aspect and audio and
subtitle streams, and tags the video BT.709 with a matching RGB->YUV conversion.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from colorize.errors import OutputWriteError, UnsupportedOutputError
from colorize.files import replace_file
from colorize.video import images
from colorize.video.source import FrameMeta, Source, SourceInfo, VideoFileSource
from colorize.video.target import OutputTarget

if TYPE_CHECKING:  # pragma: no cover
    import av

logger = logging.getLogger(__name__)

#: Default quality per encoder (lower is better): near-transparent H.264, VP9's usual sweet spot.
DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 32}
#: The encoders' own longest keyframe interval in frames with our settings (x264's keyint,
#: libvpx's kf_max_dist; measured: keyframes at 0, 250, 500 and 0, 128, 256 on a still scene).
KEYFRAME_INTERVAL = {"libx264": 250, "libvpx-vp9": 128}


def video_codec(target: OutputTarget) -> str:
    """The encoder a video target is written with: VP9 for WebM, H.264 otherwise."""
    return "libvpx-vp9" if (target.container_format or "mp4") == "webm" else "libx264"
# FFmpeg colour numbering: 1 = BT.709 for primaries, transfer and matrix; range 1 = limited.
_BT709 = 1
_LIMITED_RANGE = 1


def _temporary_sibling(target: Path, suffix: str = "") -> Path:
    """A hidden name beside ``target`` (same filesystem, so the final rename is atomic)."""
    token = secrets.token_hex(4)
    return target.with_name(f".{target.name}.{token}.partial{suffix}")


class Sink:
    """Common interface of all outputs."""

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


def open_sink(target: OutputTarget, source: Source, crf: int | None = None) -> Sink:
    """The sink for ``target``; nothing is created on disk until the first frame."""
    if target.kind == "video":
        return VideoFileSink(target, source, crf)
    if target.kind == "png_folder":
        return PngFolderSink(target, source.info)
    return ImageFileSink(target)


class ImageFileSink(Sink):
    """One image file (single-image input)."""

    def __init__(self, target: OutputTarget) -> None:
        self._target = target
        self._temp = _temporary_sibling(target.path, target.path.suffix)
        self._written = False

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        if self._written:
            raise UnsupportedOutputError(f"{self._target.path.name} can only hold one frame")
        self._target.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            images.save_image(rgb, self._temp, self._target.image_format or "PNG")
        except OSError as error:
            raise OutputWriteError(f"cannot write {self._temp}: {error}") from None
        self._written = True

    def commit(self) -> None:
        replace_file(self._temp, self._target.path)

    def abort(self) -> None:
        self._temp.unlink(missing_ok=True)


class PngFolderSink(Sink):
    """A folder of PNG frames, named like the input images or ``%06d.png``."""

    def __init__(self, target: OutputTarget, info: SourceInfo) -> None:
        self._target = target.path
        self._temp = _temporary_sibling(target.path)
        self._names = frame_names(info)
        self._created = False

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        if not self._created:
            self._temp.mkdir(parents=True)
            self._created = True
        name = self._names.get(meta.index, f"{meta.index:06d}.png")
        try:
            images.save_image(rgb, self._temp / name, "PNG")
        except OSError as error:
            raise OutputWriteError(f"cannot write frame {name}: {error}") from None

    def commit(self) -> None:
        if not self._created:
            self._temp.mkdir(parents=True)
        if not self._target.exists():
            os.replace(self._temp, self._target)
            return
        # --overwrite of a folder: move the old one aside first so a failure can restore it.
        old = _temporary_sibling(self._target, ".old")
        os.replace(self._target, old)
        try:
            os.replace(self._temp, self._target)
        except BaseException:
            os.replace(old, self._target)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)


def frame_names(info: SourceInfo) -> dict[int, str]:
    """Input file names with a .png extension, when the input is a folder of images."""
    if info.kind != "image_folder":
        return {}
    names = [Path(name).stem + ".png" for name in info.file_names]
    if len(set(names)) != len(names):
        logger.warning("input images share names across extensions; output uses %%06d.png")
        return {}
    return dict(enumerate(names))


class VideoFileSink(Sink):
    """An MP4/MOV/MKV (H.264) or WebM (VP9) file, with the input's other streams remuxed."""

    def __init__(self, target: OutputTarget, source: Source, crf: int | None, *,
                 muxer: str | None = None, side_streams: bool = True,
                 after_pts: int | None = None, zero_based: bool = False) -> None:
        """For one part of a longer video in its final encoding (see colorize.video.join):
        ``muxer`` writes another container than the target's suffix says (the codec still
        follows the target's format), ``side_streams=False`` leaves out the input's audio and
        subtitles, ``after_pts`` continues the pts of an earlier part, and ``zero_based``
        shifts the times so that the first frame is at 0 (:attr:`origin` says by how much):
        containers keep a part's times exactly only from 0."""
        import av

        self._av = av
        self._target = target
        self._format = target.container_format or "mp4"
        self._muxer = muxer or self._format
        self._with_side_streams = side_streams
        self._source = source
        self._info = source.info
        self._codec = video_codec(target)
        self._crf = DEFAULT_CRF[self._codec] if crf is None else crf
        self._temp = _temporary_sibling(target.path, target.path.suffix)
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._pix_fmt = "yuv420p"
        self._copied: dict[int, av.stream.Stream] = {}
        self._reencoded: dict[int, av.AudioStream] = {}
        self._last_pts: int | None = after_pts
        self._zero_based = zero_based
        self._origin: int | None = None
        self._pts_step = 1
        self._fallback_time_base: Fraction = Fraction(1, 25)

    # -- set-up -------------------------------------------------------------------------

    def _open(self) -> None:
        av = self._av
        self._target.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Absolute: a relative name with a colon would be read as a URL scheme.
            self._container = av.open(str(self._temp.absolute()), "w", format=self._muxer)
        except (av.FFmpegError, OSError, ValueError) as error:
            raise OutputWriteError(f"cannot create {self._temp}: {error}") from None
        self._add_video_stream()
        if self._with_side_streams and isinstance(self._source, VideoFileSource):
            self._add_side_streams(self._source)

    def _add_video_stream(self) -> None:
        info = self._info
        rate = info.average_rate or Fraction(25)
        assert self._container is not None
        options = {"crf": str(self._crf)}
        if self._codec == "libx264":
            options["preset"] = "medium"
            if info.width % 2 or info.height % 2:
                # 4:2:0 needs even sizes; 4:4:4 keeps the exact size (High 4:4:4 profile).
                self._pix_fmt = "yuv444p"
                logger.info(
                    "frame size %dx%d is odd: writing H.264 4:4:4 to keep it exactly "
                    "(some hardware players cannot play 4:4:4)",
                    info.width,
                    info.height,
                )
        else:
            options.update({"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
        stream = self._container.add_stream(self._codec, rate=rate, options=options)
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = self._pix_fmt
        context = stream.codec_context
        # Keep the input's clock: frames are sent with their own pts (VFR stays VFR).
        time_base = info.time_base or (1 / rate)
        context.time_base = time_base
        self._fallback_time_base = time_base
        self._pts_step = max(1, round(1 / (rate * time_base))) if rate else 1
        context.color_primaries = context.color_trc = context.colorspace = _BT709
        context.color_range = _LIMITED_RANGE
        if info.sample_aspect_ratio and info.sample_aspect_ratio != 1:
            context.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        self._video = stream

    def _add_side_streams(self, source: VideoFileSource) -> None:
        assert self._container is not None
        for stream in source.side_streams:
            label = f"{stream.type} stream #{stream.index} ({stream.codec_context.name})"
            if _container_accepts(self._format, stream):
                self._copied[stream.index] = self._container.add_stream_from_template(stream)
                logger.debug("copying %s", label)
            elif stream.type == "audio":
                codec = "libopus" if self._format == "webm" else "aac"
                rate = 48000 if codec == "libopus" else stream.codec_context.sample_rate
                out = self._container.add_stream(codec, rate=rate)
                out.layout = stream.codec_context.layout
                self._reencoded[stream.index] = out
                logger.info(
                    "%s cannot be stored in %s as is: re-encoding it to %s",
                    label,
                    self._target.path.suffix,
                    "Opus" if codec == "libopus" else "AAC",
                )
            else:
                logger.info("%s cannot be stored in %s: dropped", label, self._target.path.suffix)
        dropped = len(source.container.streams.data) + len(source.container.streams.attachments)
        if dropped:
            logger.info("%d data/attachment stream(s) dropped (timecode, fonts...)", dropped)

    # -- writing ------------------------------------------------------------------------

    def write(self, rgb: np.ndarray, meta: FrameMeta) -> None:
        av = self._av
        if self._container is None:
            self._open()
        assert self._video is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        # Convert with the BT.709 matrix the stream is tagged with (PyAV defaults to BT.601).
        frame = frame.reformat(
            format=self._pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG"
        )
        frame.pts = self._next_pts(meta)
        if self._zero_based:
            if self._origin is None:
                self._origin = frame.pts
            frame.pts -= self._origin
        frame.time_base = self._video.codec_context.time_base
        try:
            self._mux(self._video.encode(frame))
            if meta.pts is not None and meta.time_base is not None:
                self._mux_side_packets(float(meta.pts * meta.time_base))
        except (av.FFmpegError, OSError) as error:
            raise OutputWriteError(
                f"writing {self._target.path.name} failed at frame {meta.index}: {error}"
            ) from None

    def _next_pts(self, meta: FrameMeta) -> int:
        """The input pts in the encoder's time base, forced strictly increasing."""
        pts = meta.pts
        clock = self._fallback_time_base
        if pts is not None and meta.time_base is not None and meta.time_base != clock:
            pts = round(pts * meta.time_base / clock)
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._pts_step
        if self._last_pts is not None and pts <= self._last_pts:
            logger.debug("non-increasing pts %s after %s: nudged", pts, self._last_pts)
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    @property
    def origin(self) -> Fraction | None:
        """With ``zero_based``: the first frame's time in seconds, which the file's times omit."""
        if self._origin is None or self._video is None:
            return None
        return self._origin * Fraction(self._video.codec_context.time_base)

    @property
    def last_pts(self) -> int | None:
        """The pts of the last frame written, in the encoder's time base."""
        return self._last_pts

    def _pending_side_packets(self, until_seconds: float | None) -> list["av.Packet"]:
        return self._source.pending_packets(until_seconds)

    def _mux_side_packets(self, until_seconds: float | None) -> None:
        # Without side streams the packets are still taken, so the source's queue stays short.
        for packet in self._pending_side_packets(until_seconds):
            index = packet.stream.index
            if index in self._copied:
                packet.stream = self._copied[index]
                self._mux(packet)
            elif index in self._reencoded:
                encoder = self._reencoded[index]
                for audio in packet.decode():
                    audio.pts = None  # let the encoder re-chunk and re-time its frames
                    self._mux(encoder.encode(audio))

    def _mux(self, packets: "av.Packet | list[av.Packet]") -> None:
        assert self._container is not None
        self._container.mux(packets)

    def commit(self) -> None:
        av = self._av
        if self._container is None:
            raise OutputWriteError("no frame was written; the output would be empty")
        assert self._video is not None
        try:
            self._flush_video()
            self._mux_side_packets(None)
            for encoder in self._reencoded.values():
                self._mux(encoder.encode(None))
            self._container.close()
        except (av.FFmpegError, OSError) as error:
            raise OutputWriteError(f"finishing {self._target.path.name} failed: {error}") from None
        replace_file(self._temp, self._target.path)

    def _flush_video(self) -> None:
        assert self._video is not None
        self._mux(self._video.encode(None))

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is deleted next anyway
                logger.debug("closing the partial output failed", exc_info=True)
        self._temp.unlink(missing_ok=True)


def _container_accepts(container_format: str, stream: "av.stream.Stream") -> bool:
    """Whether ``stream`` can be copied into ``container_format``.

    Some refusals only show when the header is written (Opus into MOV), after the file exists,
    so try the header on an in-memory container first.
    """
    import av

    probe = av.open(io.BytesIO(), "w", format=container_format)
    try:
        probe.add_stream_from_template(stream)
        probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        try:
            probe.close()
        except (av.FFmpegError, ValueError):
            pass
