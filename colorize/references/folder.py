"""``colorize keyframes``'s pick: read the input once, pick, write the keyframes folder.

Everything that can be checked is checked before the first frame is decoded (the input opens,
the shots file reads, the report reads and fits the input, the folder can be written), so a
mistake costs no scan and leaves the folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

from colorize.errors import ColorizeError, OutputWriteError
from colorize.footage.report import reference_file_name
from colorize.references.picker import (
    PickConfig,
    Suggestion,
    pick_keyframes,
    report_suggestions,
)
from colorize.references.store import KEYFRAMES_FILE, StillWriter, keyframes_json, write_json

__all__ = ["KeyframesRequest", "pick_to_folder", "stale_colour_files"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyframesRequest:
    """What ``colorize keyframes INPUT -o DIR`` was asked to do."""

    input_path: Path
    folder: Path
    shots: str | None = None          # "auto", a shots file, or None
    report_path: Path | None = None   # an earlier run's --report JSON
    config: PickConfig = PickConfig()
    image_fps: float = 25.0           # frame rate of image-folder input (for an EDL)
    progress: bool = True
    rescan: bool = False              # scan even when keyframes.json matches the request


def pick_to_folder(request: KeyframesRequest) -> dict[str, Any]:
    """Pick the keyframes of ``request.input_path`` and write ``request.folder``; returns the
    ``keyframes.json`` object written. Raises ColorizeError."""
    from colorize.pipeline import to_upright
    from colorize.progress import ProgressReporter
    from colorize.video.source import open_source

    folder = request.folder
    if folder.exists() and not folder.is_dir():
        raise OutputWriteError(f"-o {folder} is a file; give a folder for the keyframes")
    signature = request_signature(request)
    previous = None if request.rescan else _up_to_date(folder, signature)
    if previous is not None:
        logger.info("%s matches this input and these settings: not scanned again (--rescan "
                    "forces it)", folder / KEYFRAMES_FILE)
        _warn_stale(folder, previous)
        return previous
    with open_source(request.input_path,
                     image_fps=Fraction(request.image_fps).limit_denominator(1001)) as source:
        info = source.info
        exact = None if info.frame_count_is_estimate else info.frame_count
        fps = info.average_rate or Fraction(request.image_fps).limit_denominator(1001)
        shots = _shots(request.shots, exact, fps)
        suggestions = _suggestions(request.report_path, exact)
        progress = ProgressReporter(total=info.frame_count,
                                    total_is_estimate=info.frame_count_is_estimate,
                                    enabled=request.progress)
        writer = StillWriter(folder)

        def frames() -> Iterator[tuple[int, Any]]:
            for frame in source.frames():
                yield frame.meta.index, to_upright(frame.rgb, info.rotation)
                progress.advance()

        try:
            pick = pick_keyframes(frames(), shots, request.config, suggestions=suggestions,
                                  on_still=writer, frame_count=exact)
            progress.finish()
            data = keyframes_json(
                pick, writer.stills, input_label=str(info.path), frame_size=info.upright_size,
                fps=float(fps) if fps else None, shots=request.shots,
                report=str(request.report_path) if request.report_path else None,
                settings=_settings(request.config))
            data["signature"] = signature
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    _write_timeline(folder, data, fps, request)
    write_json(folder / KEYFRAMES_FILE, data)
    _warn_stale(folder, data)
    return data


def _warn_stale(folder: Path, data: dict[str, Any]) -> None:
    for name in stale_colour_files(folder, data):
        logger.warning("%s is not a keyframe of this pick, but 'colorize --ref-dir %s' would "
                       "still use it: delete it if it is left from an earlier pick",
                       folder / name, folder)


def request_signature(request: KeyframesRequest) -> dict[str, Any]:
    """What the pick depends on: the input, shots file and report (path, size, modification
    time) and every setting. A folder whose ``keyframes.json`` has the same is not scanned
    again, so the next turn of the loop (generate, review, regenerate) costs no decode."""
    return {
        "input": _file_signature(request.input_path),
        "shots": request.shots if request.shots in (None, "auto")
        else _file_signature(Path(request.shots)),
        "report": None if request.report_path is None else _file_signature(request.report_path),
        "settings": _settings(request.config),
        "image_fps": request.image_fps,
    }


def _file_signature(path: Path) -> list[Any]:
    try:
        if path.is_dir():
            entries = sorted([e.name, e.stat().st_size, e.stat().st_mtime_ns]
                             for e in path.iterdir() if e.is_file())
            digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
            return [str(path.resolve()), len(entries), digest]
        stat = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _up_to_date(folder: Path, signature: dict[str, Any]) -> dict[str, Any] | None:
    from colorize.references.store import read_keyframes

    if not (folder / KEYFRAMES_FILE).is_file():
        return None
    try:
        data = read_keyframes(folder)
    except ColorizeError:
        return None  # unreadable: picked again and replaced
    if data.get("signature") != signature:
        return None
    if not all((folder / group["still"]).is_file() for group in data["groups"]):
        return None
    return data


def stale_colour_files(folder: Path, data: dict[str, Any]) -> list[str]:
    """Colour files ``ref_*.png`` in ``folder`` that no keyframe of ``data`` expects."""
    expected = {k["colour"] for k in data["keyframes"]}
    return sorted(path.name for path in folder.glob("ref_*.*")
                  if path.is_file() and path.name not in expected)


def _write_timeline(folder: Path, data: dict[str, Any], fps: Fraction,
                    request: KeyframesRequest) -> None:
    """``shots.otio`` and ``shots.edl`` of the shots used, for an editor to check the cuts; a
    missing OpenTimelineIO extra costs only these two files."""
    from colorize.footage.shots import shots_from_cuts
    from colorize.footage.timeline import write_shot_timeline

    if request.shots is None:
        return
    shots = shots_from_cuts(data["cuts"], data["frame_count"])
    try:
        write_shot_timeline(folder, shots, fps, media=request.input_path,
                            name=request.input_path.stem)
    except OSError as exc:
        raise OutputWriteError(f"cannot write the shots timeline in {folder}: "
                               f"{exc.strerror or exc}") from None
    except ColorizeError as exc:  # OpenTimelineIO or its EDL adapter not installed
        logger.warning("no shots.otio / shots.edl: %s", exc)


def _shots(shots: str | None, frame_count: int | None, fps: Fraction) -> Any:
    if shots is None:
        return None
    if shots == "auto":
        from colorize.footage.shots import CutDetector

        return CutDetector(fps=fps)
    from colorize.footage.shots import read_shots_file

    return read_shots_file(Path(shots), frame_count, fps=fps)


def _suggestions(report_path: Path | None, frame_count: int | None) -> list[Suggestion]:
    if report_path is None:
        return []
    from colorize.footage.report import ConfidenceReport

    hint = "give the --report JSON an earlier 'colorize ... --report' run wrote"
    if not report_path.is_file():
        raise ColorizeError(f"--report {report_path} not found; {hint}")
    try:
        report = ConfidenceReport.read(report_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc) or type(exc).__name__
        raise ColorizeError(f"cannot read --report {report_path} ({reason}); {hint}") from None
    if frame_count is not None and len(report) not in (0, frame_count):
        raise ColorizeError(
            f"--report {report_path} covers {len(report)} frames but the input has "
            f"{frame_count}; give the report of a run on this input")
    suggestions = report_suggestions(report)
    logger.info("--report %s: %d low-confidence span(s): %s", report_path, len(suggestions),
                ", ".join(reference_file_name(s.frame) for s in suggestions) or "none")
    return suggestions


def _settings(config: PickConfig) -> dict[str, Any]:
    return asdict(config)  # the quality limits too: asdict follows nested dataclasses
