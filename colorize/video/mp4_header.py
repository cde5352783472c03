"""What an MP4/MOV header says about a track's samples that FFmpeg's index does not pass on.

PyAV gives each video sample's decode time, keyframe flag, offset and size from the header
(``stream.index_entries``), but not its presentation time: that is the decode time plus the
sample's *composition offset* from the ``ctts`` table. :func:`composition_offsets` reads that
table (and checks the ``stsz`` sample count and the edit list) so that a frame index can be
built from the header alone, without reading the samples (:func:`colorize.video.seek.scan_frame_index`).
Anything it does not recognise as the plain case (fragmented files, several edits, a count that
disagrees) gives None, and the caller reads the packets instead.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator

# Boxes that only hold other boxes, on the way from moov to a track's sample tables.
_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"edts"}
# Tables read into memory (the rest of a track's boxes is skipped unread).
_TABLES = {b"tkhd", b"stsz", b"ctts", b"elst"}


def composition_offsets(path: Path, track_id: int, sample_count: int) -> list[int] | None:
    """Per sample of track ``track_id``, in decode order, pts minus dts (in the track's time
    base); None unless the header is the plain case whose offsets FFmpeg applies as they are."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            top = list(_boxes(handle, 0, size))
            if any(kind == b"moof" for kind, _, _ in top):
                return None                  # fragmented: the samples are described elsewhere
            for kind, start, end in top:
                if kind != b"moov":
                    continue
                for child, child_start, child_end in _boxes(handle, start, end):
                    if child == b"trak":
                        tables = _tables(handle, child_start, child_end)
                        if _track_id(tables.get(b"tkhd", b"")) == track_id:
                            return _offsets(tables, sample_count)
    except (OSError, struct.error, ValueError):
        return None
    return None


def _boxes(handle: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes between ``start`` and ``end``."""
    position = start
    while position + 8 <= end:
        handle.seek(position)
        size, kind = struct.unpack(">I4s", handle.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", handle.read(8))[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise ValueError(f"box {kind!r} at {position} runs past its parent")
        yield kind, position + header, position + size
        position += size


def _tables(handle: BinaryIO, start: int, end: int) -> dict[bytes, bytes]:
    tables: dict[bytes, bytes] = {}
    for kind, payload, box_end in _boxes(handle, start, end):
        if kind in _CONTAINERS:
            tables.update(_tables(handle, payload, box_end))
        elif kind in _TABLES:
            if kind in tables:
                raise ValueError(f"two {kind!r} boxes in one track")
            handle.seek(payload)
            tables[kind] = handle.read(box_end - payload)
    return tables


def _track_id(tkhd: bytes) -> int | None:
    if len(tkhd) < 24:
        return None
    field = tkhd[12:16] if tkhd[0] == 0 else tkhd[20:24]
    return struct.unpack(">I", field)[0]


def _offsets(tables: dict[bytes, bytes], sample_count: int) -> list[int] | None:
    stsz = tables.get(b"stsz")
    if stsz is None or struct.unpack(">I", stsz[8:12])[0] != sample_count:
        return None
    edits = tables.get(b"elst")
    if edits is not None and not _one_plain_edit(edits):
        return None
    ctts = tables.get(b"ctts")
    if ctts is None:
        return [0] * sample_count
    signed = ctts[0] == 1
    entries = struct.unpack(">I", ctts[4:8])[0]
    offsets: list[int] = []
    for number in range(entries):
        count, offset = struct.unpack(">Ii" if signed else ">II", ctts[8 + 8 * number:16 + 8 * number])
        offsets.extend([offset] * count)
    return offsets if len(offsets) == sample_count else None


def _one_plain_edit(elst: bytes) -> bool:
    """One edit that plays the media from some point at normal speed (what encoders write to
    hide B-frame delay); FFmpeg then shifts every timestamp alike."""
    version, entries = elst[0], struct.unpack(">I", elst[4:8])[0]
    if entries != 1:
        return False
    if version == 1:
        media_time, rate = struct.unpack(">qh", elst[16:26])
    else:
        media_time, rate = struct.unpack(">ih", elst[12:18])
    return media_time >= 0 and rate == 1
