"""Editors' timelines as shot lists, through OpenTimelineIO.

Reading (``--shots FILE``, recognised from the content): FCP 7 XML (``<xmeml>``), FCPX XML
(``<fcpxml>``, also inside an ``.fcpxmld`` bundle) and OpenTimelineIO JSON (``.otio``) are read
by OpenTimelineIO and its adapter plug-ins, the Academy Software Foundation's editorial
interchange library, instead of a parser of our own. The cuts are those of the timeline's
first video track, in the track's own time (its first frame is the video's frame 0, whatever
the timeline's start timecode): every clip or gap starts a shot, and a transition (a dissolve,
a wipe) counts as a cut where it starts, as in a CMX3600 EDL. Times are turned into frames at the video's frame rate (by time, so a
timeline at 24 fps lines up with its 24 fps export), or at the timeline's own rate when the
video's is unknown. Zero-length items are skipped.

Writing (:func:`write_shot_timeline`): the shots a run used as ``shots.otio`` and a CMX3600
``shots.edl`` (each shot a clip of the input film), so an editor can check the cuts on a
timeline; both read back through ``--shots`` to the same cuts.

OpenTimelineIO is the optional extra ``colorize-video[timeline]``, imported only here and only
when a timeline is read or written.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from colorize.errors import ColorizeError, ShotListError

if TYPE_CHECKING:  # pragma: no cover
    from colorize.footage.shots import Shot

logger = logging.getLogger(__name__)

__all__ = ["TIMELINE_FORMATS", "bundle_document", "read_timeline_cuts", "sniff_timeline",
           "write_shot_timeline"]

#: OpenTimelineIO adapter name -> what users call the format.
TIMELINE_FORMATS = {"fcp_xml": "FCP 7 XML", "fcpx_xml": "FCPX XML", "otio_json": "OpenTimelineIO"}

INSTALL_HINT = (
    "{what} needs OpenTimelineIO: install colorize-video[timeline] "
    "(pip install 'colorize-video[timeline]'){otherwise}"
)

# A timeline whose rate differs from the video's by more than this is mapped by time, with a note.
_RATE_TOLERANCE = 0.001
# How far into the file the format is looked for (an XML prolog, a DOCTYPE, comments).
_SNIFF_CHARS = 4096


def bundle_document(path: Path) -> Path:
    """``path``, or the timeline inside it when it is an FCPX bundle (``.fcpxmld``, what Final
    Cut Pro 10.6 and later export: a folder holding ``Info.fcpxml``)."""
    inside = path / "Info.fcpxml"
    return inside if path.is_dir() and inside.is_file() else path


def sniff_timeline(text: str) -> str | None:
    """The OpenTimelineIO adapter that reads ``text``, or None when it is not a timeline."""
    head = text[:_SNIFF_CHARS].lstrip()
    if head.startswith("{"):
        return "otio_json" if '"OTIO_SCHEMA"' in head else None
    if not head.startswith("<"):
        return None
    if "<xmeml" in head:
        return "fcp_xml"
    if "<fcpxml" in head:
        return "fcpx_xml"
    return None


def read_timeline_cuts(path: Path, text: str, adapter: str, frame_count: int | None,
                       fps: float | Fraction | None) -> list[int]:
    """Cut frames of the timeline in ``text`` (see the module docstring), sorted, without 0.

    Raises :class:`ShotListError` (one line, naming the file) for a timeline that cannot be
    read, has no video track, or has a cut past the video's end, and :class:`ColorizeError`
    when OpenTimelineIO or the format's adapter is not installed.
    """
    otio = _import_otio(f"--shots {TIMELINE_FORMATS[adapter]} ({path.name})",
                        ", or give the cuts as a plain frame list")
    label = TIMELINE_FORMATS[adapter]
    _check_adapter(otio, adapter)
    try:
        loaded = otio.adapters.read_from_string(text, adapter_name=adapter)
    except Exception as error:  # noqa: BLE001 - adapters raise anything on a bad file
        raise ShotListError(f"shots file {path} is not a readable {label} timeline "
                            f"({_first_line(error)}); export it again from the editor") from None
    timeline = _first_timeline(otio, loaded, path, label)
    tracks = list(timeline.video_tracks())
    if not tracks:
        raise ShotListError(f"shots file {path}: the {label} timeline has no video track")
    if len(tracks) > 1:
        logger.info("shots file %s: %d video tracks, cuts taken from the first (%s)", path.name,
                    len(tracks), tracks[0].name or "unnamed")
    return _track_cuts(otio, tracks[0], path, frame_count, fps)


def _first_timeline(otio: Any, loaded: Any, path: Path, label: str) -> Any:
    if isinstance(loaded, otio.schema.Timeline):
        return loaded
    timelines = list(loaded.find_children(descended_from_type=otio.schema.Timeline)) \
        if hasattr(loaded, "find_children") else []
    if not timelines:
        raise ShotListError(f"shots file {path}: no timeline (sequence) in this {label} file")
    if len(timelines) > 1:
        logger.info("shots file %s holds %d timelines: cuts taken from the first (%s)",
                    path.name, len(timelines), timelines[0].name or "unnamed")
    return timelines[0]


def _track_cuts(otio: Any, track: Any, path: Path, frame_count: int | None,
                fps: float | Fraction | None) -> list[int]:
    rate = float(fps) if fps and float(fps) > 0 else None
    starts: list[tuple[str, int]] = []        # (item name, first frame)
    pending: Any = None                        # start of a transition into the next item
    noted_rate = False
    for item in track:
        item_range = track.range_of_child(item)
        if isinstance(item, otio.schema.Transition):
            pending = item_range.start_time
            continue
        start = pending if pending is not None else item_range.start_time
        pending = None
        if item_range.duration.value <= 0:
            continue
        if rate is not None and not noted_rate and \
                abs(start.rate - rate) > _RATE_TOLERANCE * rate:
            logger.info("shots file %s is at %.3f fps, the video at %.3f: cuts placed by time",
                        path.name, start.rate, rate)
            noted_rate = True
        frame = round(start.to_seconds() * rate) if rate is not None else round(start.to_frames())
        name = item.name or type(item).__name__.lower()
        if starts and frame <= starts[-1][1]:
            continue  # a transition longer than the item before it: one cut
        starts.append((name, frame))
    cuts: list[int] = []
    for name, frame in starts:
        if frame_count is not None and frame >= frame_count:
            raise ShotListError(
                f"shots file {path}: {name!r} starts at frame {frame}, past the last frame (the "
                f"video has {frame_count} frames, 0-{max(frame_count - 1, 0)}); check that the "
                "timeline is the one this video was exported from")
        if frame > 0:
            cuts.append(frame)
    return cuts


def write_shot_timeline(folder: Path, shots: Sequence["Shot"], fps: float | Fraction, *,
                        media: Path | None = None, name: str = "shots") -> tuple[Path, Path]:
    """Write ``shots`` as ``folder/shots.otio`` (OpenTimelineIO) and ``folder/shots.edl``
    (CMX3600), for an editor to check the cuts on a timeline.

    Parameters
    ----------
    folder:
        An existing folder; the two files are replaced atomically if present.
    shots:
        Consecutive shots from frame 0 (:func:`colorize.footage.shots.shots_from_cuts`).
    fps:
        The video's frame rate; the EDL's timecodes are at ``round(fps)``, drop-frame for
        29.97 and 59.94 as OpenTimelineIO writes them.
    media:
        The film the shots are cut from (each clip refers to it); None leaves clips without
        media.
    name:
        The timeline's name (the EDL's ``TITLE``).

    Returns
    -------
    The paths of ``shots.otio`` and ``shots.edl``. Both read back through ``--shots`` to the
    cuts of ``shots``. Raises :class:`~colorize.errors.ColorizeError` when OpenTimelineIO or
    its CMX3600 adapter is not installed.
    """
    from colorize.footage.checkpoint import write_atomically

    otio = _import_otio("writing shots.otio and shots.edl", "")
    _check_adapter(otio, "cmx_3600")
    timeline = _shots_timeline(otio, shots, float(fps), media, name)
    edl = otio.adapters.write_to_string(timeline, adapter_name="cmx_3600")
    otio_path, edl_path = folder / "shots.otio", folder / "shots.edl"
    write_atomically(otio_path, otio.adapters.write_to_string(timeline, "otio_json").encode())
    write_atomically(edl_path, edl.encode())
    return otio_path, edl_path


def _shots_timeline(otio: Any, shots: Sequence["Shot"], rate: float, media: Path | None,
                    name: str) -> Any:
    time, span = otio.opentime.RationalTime, otio.opentime.TimeRange
    total = shots[-1].end if shots else 0
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for shot in shots:
        reference = None
        if media is not None:
            reference = otio.schema.ExternalReference(
                target_url=media.resolve().as_uri(),
                available_range=span(time(0, rate), time(total, rate)))
        track.append(otio.schema.Clip(
            name=f"shot {shot.index:04d}", media_reference=reference,
            source_range=span(time(shot.start, rate), time(shot.frame_count, rate)),
            metadata={"colorize": {"shot": shot.index, "start": shot.start, "end": shot.end}}))
    timeline = otio.schema.Timeline(name=name)
    timeline.tracks.append(track)
    return timeline


def _import_otio(what: str, otherwise: str) -> Any:
    try:
        import opentimelineio
    except ImportError:
        raise ColorizeError(INSTALL_HINT.format(what=what, otherwise=otherwise)) from None
    return opentimelineio


def _check_adapter(otio: Any, adapter: str) -> None:
    """Adapters are plug-ins in packages of their own (otio_json ships with the library)."""
    try:
        otio.adapters.from_name(adapter)
    except otio.exceptions.NotSupportedError:
        package = {"fcp_xml": "otio-fcp-adapter", "fcpx_xml": "otio-fcpx-xml-adapter",
                   "cmx_3600": "otio-cmx3600-adapter"}.get(adapter, adapter)
        raise ColorizeError(f"OpenTimelineIO has no {adapter} adapter here: install "
                            f"colorize-video[timeline] (it brings {package})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 120 else line[:117] + "..."
