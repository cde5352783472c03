"""Exact seeking: where decoding may start so that frame numbers stay those of a decode from
the start of the file.

A frame's number is its position in presentation order, counted from the first decoded frame
(what :meth:`~colorize.video.source.Source.frames` gives). :func:`scan_frame_index` reads the
video packets' timestamps without decoding anything (an MP4's from its header,
:mod:`colorize.video.mp4_header`; other files' by reading the packets once): sorted, they are the
frames in order, so frame *n* is the packet with the *n*-th smallest pts; a keyframe packet is
a *seek point* when every packet decoded before it is shown before it (so decoding from it
reaches every later frame, with B-frames, open GOPs and variable frame rates alike).

A :class:`SeekAnchor` is what one seek needs: a seek point's frame number and the pts of the
frames from it on. The source seeks to the anchor's first pts, drops what the decoder shows
before it (earlier frames, an open GOP's leading pictures), and accepts the seek only when the
frames that follow carry exactly the anchor's timestamps; otherwise it decodes from the start.
The anchor comes from the index (a shot task) or from the frames an interrupted run already
decoded (:class:`AnchorTracker`, saved in a resume checkpoint), which needs no scan at all.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from colorize.files import replace_file
from colorize.video.mp4_header import composition_offsets

#: The longest stretch an anchor keeps (frames from its keyframe): past this a GOP is too long
#: to be worth remembering, and a resume decodes from the start instead.
MAX_ANCHOR_FRAMES = 2048


class NotSeekableError(Exception):
    """The file's packets cannot give exact frame numbers; the message says why."""


@dataclass(frozen=True)
class SeekAnchor:
    """Frame ``frame`` is a keyframe decoding may start from; ``pts`` are the presentation
    timestamps of frames ``frame``, ``frame + 1``, ... (at least the keyframe's own)."""

    frame: int
    pts: tuple[int, ...]

    def reaches(self, start: int) -> bool:
        """Whether decoding from this anchor is a way to reach frame ``start``."""
        return 0 <= self.frame <= start and bool(self.pts)

    def as_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "pts": list(self.pts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SeekAnchor":
        return cls(int(data["frame"]), tuple(int(p) for p in data["pts"]))


@dataclass(frozen=True)
class FrameIndex:
    """Every frame's pts in presentation order and the frames decoding may start from."""

    pts: tuple[int, ...]
    seek_points: tuple[int, ...]          # frame numbers, increasing, 0 first

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    def anchor_for(self, start: int) -> SeekAnchor:
        """The anchor of the latest seek point at or before frame ``start``."""
        if not 0 <= start < len(self.pts):
            raise IndexError(f"frame {start} is outside the index (0-{len(self.pts) - 1})")
        point = self.seek_points[bisect.bisect_right(self.seek_points, start) - 1]
        return SeekAnchor(point, self.pts[point:start + 1])

    @classmethod
    def from_frames(cls, frames: Iterable[Any]) -> "FrameIndex":
        """The index of frames decoded from the start (:class:`~colorize.video.source.FrameMeta`
        in order): their own timestamps, their keyframes as seek points. A pass that decodes
        the whole video anyway (``--shots auto``'s cut detection) needs no scan."""
        metas = list(frames)
        stamps = [meta.pts for meta in metas]
        if not metas or any(pts is None for pts in stamps):
            raise NotSeekableError("some frames carry no timestamp")
        if any(b <= a for a, b in zip(stamps, stamps[1:])):
            raise NotSeekableError("the frames' timestamps do not increase")
        points = tuple(meta.index for meta in metas if meta.keyframe)
        if not points or points[0] != 0:
            raise NotSeekableError("the first frame is not a keyframe")
        return cls(tuple(stamps), points)

    def as_json(self) -> dict[str, Any]:
        return {"pts": list(self.pts), "seek_points": list(self.seek_points)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FrameIndex":
        return cls(tuple(int(p) for p in data["pts"]), tuple(int(f) for f in data["seek_points"]))

    def save(self, path: Path) -> None:
        _write_json(path, self.as_json())

    @classmethod
    def load(cls, path: Path) -> "FrameIndex":
        """The index saved at ``path``; NotSeekableError when what was saved is the reason
        there is none (:func:`save_not_seekable`)."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if "not_seekable" in data:
            raise NotSeekableError(str(data["not_seekable"]))
        return cls.from_json(data)


def save_not_seekable(path: Path, reason: str) -> None:
    """Record at ``path``, where an index would go, why a file has none: the readers then
    decode from the start without scanning the file again each."""
    _write_json(path, {"not_seekable": reason})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written under a temporary name and renamed: a reader never sees half an index (one
    that is lost can be made again, so no fsync)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        replace_file(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def index_from_packets(packets: list[tuple[int | None, bool]]) -> FrameIndex:
    """The index of a stream whose frame packets, in decode order, are ``(pts, is_keyframe)``.

    Raises :class:`NotSeekableError` when the packets cannot number the frames exactly.
    """
    if not packets:
        raise NotSeekableError("the video stream has no packets")
    if any(pts is None for pts, _ in packets):
        raise NotSeekableError("some video packets carry no timestamp")
    ordered = sorted(pts for pts, _ in packets)  # type: ignore[type-var]
    if any(a == b for a, b in zip(ordered, ordered[1:])):
        raise NotSeekableError("two video packets carry the same timestamp")
    rank = {pts: number for number, pts in enumerate(ordered)}
    points: list[int] = []
    shown_before = None     # the latest pts among the packets decoded so far
    for pts, keyframe in packets:
        # A keyframe is a seek point only when nothing decoded before it is shown after it.
        if keyframe and (shown_before is None or shown_before < pts):
            points.append(rank[pts])
        shown_before = pts if shown_before is None else max(shown_before, pts)
    if not points or points[0] != 0:
        raise NotSeekableError("the first frame is not a keyframe")
    return FrameIndex(tuple(ordered), tuple(sorted(points)))


def scan_frame_index(path: Path, stream_index: int) -> FrameIndex:
    """The frame index of the video stream ``stream_index`` of ``path``, nothing decoded.

    An MP4 or MOV header lists every sample's decode time, keyframe flag and composition
    offset: the index then comes from the header alone (checked against the first packets the
    demuxer reads), without reading the film. Other files have their video packets read
    (demux only).

    Raises :class:`NotSeekableError` when the packets cannot give exact frame numbers (no
    timestamps, duplicates, a count that disagrees with the container's own index).
    """
    import av

    try:
        with av.open(str(path.resolve()), metadata_errors="replace") as container:
            stream = container.streams.get(stream_index)[0]
            indexed = int(stream.frames or 0)
            header_indexed = container.format.name == MP4_FORMAT
            packets = _packets_from_the_header(path, container, stream) if header_indexed \
                else None
        if packets is None:
            with av.open(str(path.resolve()), metadata_errors="replace") as container:
                stream = container.streams.get(stream_index)[0]
                packets = _packets(container, stream)
    except (av.FFmpegError, OSError, ValueError, EOFError) as error:
        raise NotSeekableError(f"the packet scan failed ({error})") from None
    index = index_from_packets(packets)
    if header_indexed and indexed and indexed != index.frame_count:
        raise NotSeekableError(f"{index.frame_count} packets but {indexed} frames in the index")
    return index


MP4_FORMAT = "mov,mp4,m4a,3gp,3g2,mj2"
#: Packets read to check an index built from an MP4 header against the demuxer's own.
HEADER_CHECK_PACKETS = 120


def discard_others(container: Any, wanted: list[Any]) -> None:
    """Tell the demuxer to skip the packets of every stream but ``wanted``: where the file
    allows (MP4, MOV) their bytes are then not even read."""
    import av

    keep = {stream.index for stream in wanted}
    for stream in container.streams:
        if stream.index not in keep:
            stream.discard = av.stream.Discard.all


def _demuxed(container: Any, stream: Any) -> Iterator[Any]:
    """``stream``'s packets in decode order, the other streams' skipped by the demuxer."""
    discard_others(container, [stream])
    yield from container.demux(stream)


def _packets(container: Any, stream: Any) -> list[tuple[int | None, bool]]:
    """(pts, is_keyframe) of ``stream``'s frame packets in decode order."""
    return [(packet.pts, bool(packet.is_keyframe)) for packet in _demuxed(container, stream)
            if packet.size and not packet.is_discard]


def _packets_from_the_header(path: Path, container: Any,
                             stream: Any) -> list[tuple[int | None, bool]] | None:
    """The packets' (pts, is_keyframe) from an MP4 header: decode time plus composition offset
    per sample; None unless the header is the plain case and its first packets agree with what
    the demuxer reads."""
    entries = list(stream.index_entries)
    if not entries or len(entries) != int(stream.frames or 0) or \
            any(entry.is_discard for entry in entries):
        return None
    offsets = composition_offsets(path, stream.id, len(entries))
    if offsets is None:
        return None
    packets = [(entry.timestamp + offset, bool(entry.is_keyframe))
               for entry, offset in zip(entries, offsets)]
    read = []
    for packet, _ in zip((p for p in _demuxed(container, stream) if p.size),
                         range(HEADER_CHECK_PACKETS)):
        read.append((packet.pts, bool(packet.is_keyframe)))
    return packets if read == packets[:len(read)] else None


class AnchorTracker:
    """Remembers the decoded frames since the keyframe before the next checkpoint, so that a
    resume checkpoint can say where to seek (:meth:`anchor_for`) without any scan.

    Thread-safe: frames are observed where they are decoded, anchors asked for where
    checkpoints are taken (a few frames behind, always for increasing frames)."""

    def __init__(self) -> None:
        self._entries: list[tuple[int, int | None, bool]] = []   # (frame, pts, keyframe)
        self._lock = threading.Lock()

    def observe(self, frame: int, pts: int | None, keyframe: bool) -> None:
        with self._lock:
            self._entries.append((frame, pts, keyframe))
            if len(self._entries) > 4 * MAX_ANCHOR_FRAMES:
                # No checkpoint for that long: only the latest frames can still be asked for.
                del self._entries[:2 * MAX_ANCHOR_FRAMES]

    def anchor_for(self, start: int) -> SeekAnchor | None:
        """An anchor to reach frame ``start`` from the frames seen so far, or None (no keyframe
        in reach, or frames without timestamps). Frames before its keyframe are forgotten."""
        with self._lock:
            keys = [i for i, (frame, _, key) in enumerate(self._entries) if key and frame <= start]
            if not keys:
                return None
            del self._entries[:keys[-1]]
            stretch = [entry for entry in self._entries if entry[0] <= start]
        if any(pts is None for _, pts, _ in stretch) or len(stretch) > MAX_ANCHOR_FRAMES:
            return None
        return SeekAnchor(stretch[0][0], tuple(int(pts) for _, pts, _ in stretch))  # type: ignore[arg-type]
