"""A video file from parts that are already encoded: packets are copied, never encoded again.

A checkpointed run (``--checkpoint-every``) encodes its video in parts, one per checkpoint
interval, each written by :class:`~colorize.video.sink.VideoFileSink` in the output's own codec
and settings but as an MP4 with the video only and its times starting at 0 (``muxer="mp4"``,
``zero_based``): MP4 keeps such a part's times exactly (a later start is rounded through the
edit list, and NUT drops the first decode times of a stream with B-frames). Each part starts
with a keyframe, so the parts can simply follow each other: :class:`JoinedVideoSink` copies
their packets, shifted back to their origin, into the final container and adds the input's
audio and subtitles exactly as ``VideoFileSink`` does when it encodes directly, so the final
assembly costs one read of the parts, not a decode and a second encode.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from colorize.errors import OutputWriteError
from colorize.video.sink import VideoFileSink
from colorize.video.seek import discard_others
from colorize.video.source import FrameMeta, Source, VideoFileSource, packet_seconds
from colorize.video.target import OutputTarget

if TYPE_CHECKING:  # pragma: no cover
    import av

logger = logging.getLogger(__name__)

PART_MUXER = "mp4"


class DtsOverlapError(Exception):
    """Two parts' decode times overlap and cannot be separated: the parts must be re-encoded."""


class SidePacketReader:
    """The input's audio and subtitle packets in file order, demuxed without the video stream
    being decoded (a remux needs the packets only)."""

    def __init__(self, source: VideoFileSource) -> None:
        import av

        self._container = av.open(str(source.info.path.resolve()), metadata_errors="replace")
        wanted = [self._container.streams[stream.index] for stream in source.side_streams]
        discard_others(self._container, wanted)
        self._packets = self._container.demux(*wanted) if wanted else iter(())
        self._next: "av.Packet | None" = None

    def take(self, until_seconds: float | None) -> list["av.Packet"]:
        """Packets up to ``until_seconds`` (all remaining ones when None)."""
        taken: list[av.Packet] = []
        while True:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    return taken
                if not self._next.size:      # a stream's end marker, not data
                    self._next = None
                    continue
            if until_seconds is not None and packet_seconds(self._next) > until_seconds:
                return taken
            taken.append(self._next)
            self._next = None

    def close(self) -> None:
        self._container.close()


class JoinedVideoSink(VideoFileSink):
    """The target file from encoded video packets plus the input's other streams.

    ``template`` is the video stream of the first part: its codec parameters (size, pixel
    format, colour tags, the encoder's extradata) are those of every part, since all parts were
    written by the same encoder settings.
    """

    def __init__(self, target: OutputTarget, source: Source, template: "av.VideoStream") -> None:
        super().__init__(target, source, crf=None)
        self._template = template
        self._side: SidePacketReader | None = None
        if isinstance(source, VideoFileSource) and source.side_streams:
            self._side = SidePacketReader(source)
        self._last_dts: int | None = None

    def _add_video_stream(self) -> None:
        assert self._container is not None
        stream = self._container.add_stream_from_template(self._template)
        if self._info.rotation:
            stream.set_display_rotation(self._info.rotation)
        self._video = stream

    def write(self, rgb, meta: FrameMeta) -> None:  # noqa: ANN001 - see the class docstring
        raise TypeError("JoinedVideoSink takes encoded packets (write_packet), not frames")

    def write_packet(self, packet: "av.Packet", origin: Fraction = Fraction(0)) -> None:
        """Copy one encoded video packet (in decode order) into the target, ``origin`` seconds
        later than its part says (a part written ``zero_based``)."""
        av = self._av
        if self._container is None:
            self._open()
        if origin and packet.time_base:
            # The muxer's clock divides the encoder's, so this is a whole number of ticks.
            shift = round(origin / Fraction(packet.time_base))
            packet.pts = None if packet.pts is None else packet.pts + shift
            packet.dts = None if packet.dts is None else packet.dts + shift
        self._separate_decode_times(packet)
        packet.stream = self._video
        try:
            self._mux(packet)
            self._mux_side_packets(packet_seconds(packet))
        except (av.FFmpegError, OSError) as error:
            raise OutputWriteError(f"writing {self._target.path.name} failed: {error}") from None

    def _separate_decode_times(self, packet: "av.Packet") -> None:
        """Keep decode times increasing across a join.

        Within a part they increase; at a join the encoder's start-up delay is estimated anew
        from the first frames of the next part, which can, with a variable frame rate, reach
        back before the previous part's last decode time. A later decode time that still comes
        before the packet's presentation time is equally valid; otherwise the parts cannot be
        joined as they are.
        """
        dts = packet.dts
        if dts is None or self._last_dts is None or dts > self._last_dts:
            self._last_dts = dts
            return
        moved = self._last_dts + 1
        if packet.pts is not None and moved > packet.pts:
            raise DtsOverlapError(f"decode time {dts} cannot follow {self._last_dts}")
        packet.dts = moved
        self._last_dts = moved

    def _pending_side_packets(self, until_seconds: float | None) -> list["av.Packet"]:
        return self._side.take(until_seconds) if self._side is not None else []

    def _flush_video(self) -> None:
        """Nothing to flush: no encoder."""

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._close_side()

    def abort(self) -> None:
        try:
            super().abort()
        finally:
            self._close_side()

    def _close_side(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None


def open_part(path: Path) -> "av.container.InputContainer":
    """One part, to read its packets or use its video stream as a template."""
    import av

    return av.open(str(path.absolute()), format=PART_MUXER)


def part_packets(part: "av.container.InputContainer") -> Iterator["av.Packet"]:
    """The video packets of an open part, in decode order (end-of-stream markers left out)."""
    for packet in part.demux(part.streams.video[0]):
        if packet.size:
            yield packet
