"""The batch plan: which videos, with which references and options, into which outputs.

SOURCE is either a folder or a manifest:

* a folder: every video file in it (not recursive), sorted by name. ``clip.mp4`` takes its
  reference from ``clip.png`` / ``clip.jpg`` (any image extension) beside it and/or from a folder
  ``clip.refs/`` of keyframe references named ``ref_000120.png`` (the reference for frame 120);
* a manifest, CSV (header row) or JSON Lines (``.jsonl``): one video per row with ``input``,
  ``references`` (CSV: ``;``-separated; JSON: a list or a string; each ``PATH``, ``FRAME=PATH``
  or a ``.refs`` folder), optional ``output`` and per-video options (:data:`VIDEO_OPTIONS`).
  Relative paths are relative to the manifest's folder. Videos run in manifest order.

Problems that concern one video (no reference found, a missing reference file) do not stop the
plan: the video carries a ``problem`` and is reported as failed. Problems with the plan itself
(unreadable manifest, unknown column, two videos writing one output) raise :class:`PlanError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError
from colorize.footage.references import parse_ref_option
from colorize.video.images import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".mxf",
     ".wmv", ".flv", ".3gp"}
)
#: Output containers kept as they are; other inputs are written as MP4.
KEEP_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm"})
#: ``clip.refs/ref_000120.png``: the reference that applies from frame 120 on.
KEYFRAME_NAME = re.compile(r"^ref_(\d+)$")
#: Per-video options a manifest may set, with their types (the command line sets defaults).
VIDEO_OPTIONS: dict[str, type] = {
    "crf": int,
    "max_side": int,
    "ref_is_first_frame": bool,
    "fps": float,
    "shots": str,
}
MANIFEST_COLUMNS = {"input", "references", "output"}


class PlanError(ColorizeError):
    """SOURCE, the manifest or an option cannot be turned into a plan."""

    exit_code = 1


@dataclass(frozen=True)
class References:
    """A video's references: the main one and keyframe ones (frame -> path)."""

    main: Path | None = None
    keyframes: tuple[tuple[int, Path], ...] = ()

    def all(self) -> list[tuple[int | None, Path]]:
        entries: list[tuple[int | None, Path]] = [(None, self.main)] if self.main else []
        return entries + list(self.keyframes)

    def first(self) -> Path | None:
        """The reference a run without shots uses: the main one, else the earliest keyframe."""
        if self.main is not None:
            return self.main
        return self.keyframes[0][1] if self.keyframes else None

    def for_shot(self, start: int) -> Path | None:
        """The reference for a shot starting at frame ``start``: the latest keyframe reference
        at or before ``start``, else the main one (else the earliest keyframe)."""
        chosen = None
        for frame, path in self.keyframes:
            if frame <= start:
                chosen = path
        return chosen if chosen is not None else self.first()

    def describe(self) -> str:
        parts = [str(self.main)] if self.main else []
        parts += [f"{frame}={path}" for frame, path in self.keyframes]
        return ", ".join(parts) if parts else "none"


@dataclass(frozen=True)
class VideoJob:
    """One video of the batch."""

    index: int
    input: Path
    output: Path
    references: References
    options: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None   # why this video cannot run (reported as failed)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def fingerprint(self, weights: str = "") -> str:
        """Identity of the work: input and references (path, size, mtime), options, weights.
        A finished line whose fingerprint differs is redone."""
        def stat(path: Path | None) -> list[Any]:
            if path is None:
                return [None]
            try:
                info = path.stat()
                return [str(path.resolve()), info.st_size, info.st_mtime_ns]
            except OSError:
                return [str(path), None, None]

        data = {
            "input": stat(self.input),
            "references": [[frame, stat(path)] for frame, path in self.references.all()],
            "options": sorted((k, str(v)) for k, v in self.options.items()),
            "weights": weights,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BatchPlan:
    jobs: list[VideoJob]
    outdir: Path
    source: Path


def build_plan(source: Path, outdir: Path, defaults: dict[str, Any] | None = None) -> BatchPlan:
    """The plan for SOURCE (folder or manifest) writing into OUTDIR; ``defaults`` are the
    command line's per-video options, which a manifest row may override."""
    if not source.exists():
        raise PlanError(f"batch source not found: {source}; give a folder of videos or a manifest")
    defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
    if source.is_dir() and outdir.resolve() == source.resolve():
        raise PlanError(f"OUTDIR is SOURCE ({source}): outputs would replace the inputs; "
                        "give another -o folder")
    if source.is_dir():
        jobs = _folder_jobs(source, outdir, defaults)
    elif source.suffix.lower() == ".csv":
        jobs = _manifest_jobs(source, _read_csv(source), outdir, defaults)
    elif source.suffix.lower() in (".jsonl", ".ndjson"):
        jobs = _manifest_jobs(source, _read_jsonl(source), outdir, defaults)
    else:
        raise PlanError(
            f"batch source {source} is neither a folder nor a manifest (.csv, .jsonl)")
    if not jobs:
        raise PlanError(f"no videos found in {source} (extensions: "
                        f"{', '.join(sorted(VIDEO_EXTENSIONS))})")
    _check_outputs(jobs, outdir)
    return BatchPlan(jobs=jobs, outdir=outdir, source=source)


# -- folder ------------------------------------------------------------------------------------

def _folder_jobs(folder: Path, outdir: Path, defaults: dict[str, Any]) -> list[VideoJob]:
    videos = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
        key=lambda p: p.name,
    )
    jobs = []
    for index, video in enumerate(videos):
        main = next((video.with_suffix(ext) for ext in sorted(IMAGE_EXTENSIONS)
                     if video.with_suffix(ext).is_file()), None)
        keyframes: tuple[tuple[int, Path], ...] = ()
        problem = None
        refs_dir = video.with_suffix(".refs")
        if refs_dir.is_dir():
            try:
                keyframes = _keyframes_in(refs_dir)
            except PlanError as error:
                problem = str(error)
        references = References(main, keyframes)
        if problem is None and references.first() is None:
            problem = (f"no reference found for {video.name}: put {video.stem}.png beside it "
                       f"or keyframe references in {video.stem}.refs/")
        jobs.append(VideoJob(index, video, _default_output(video, outdir), references,
                             dict(defaults), problem))
    return jobs


def _keyframes_in(folder: Path) -> tuple[tuple[int, Path], ...]:
    found: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        match = KEYFRAME_NAME.match(entry.stem)
        if not match:
            raise PlanError(f"{entry}: keyframe references are named ref_<frame>.png "
                            "(e.g. ref_000120.png for frame 120)")
        frame = int(match.group(1))
        if frame in found:
            raise PlanError(f"{folder}: two references for frame {frame}")
        found[frame] = entry
    if not found:
        raise PlanError(f"{folder} holds no ref_<frame>.png images")
    return tuple(sorted(found.items()))


def _default_output(video: Path, outdir: Path) -> Path:
    suffix = video.suffix.lower() if video.suffix.lower() in KEEP_CONTAINERS else ".mp4"
    return outdir / f"{video.stem}{suffix}"


# -- manifest ----------------------------------------------------------------------------------

def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PlanError(f"cannot read manifest {path}: {error}") from None
    return [{k.strip(): (v.strip() if isinstance(v, str) else v)
             for k, v in row.items() if k is not None and v not in (None, "")} for row in rows]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"cannot read manifest {path}: {error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise PlanError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise PlanError(f"{path}:{number}: each line must be a JSON object")
        rows.append(row)
    return rows


def _manifest_jobs(manifest: Path, rows: list[dict[str, Any]], outdir: Path,
                   defaults: dict[str, Any]) -> list[VideoJob]:
    base = manifest.parent
    jobs = []
    for index, row in enumerate(rows):
        where = f"{manifest.name} row {index + 1}"
        unknown = set(row) - MANIFEST_COLUMNS - set(VIDEO_OPTIONS)
        if unknown:
            raise PlanError(f"{where}: unknown column(s) {', '.join(sorted(unknown))}; known: "
                            f"{', '.join(sorted(MANIFEST_COLUMNS | set(VIDEO_OPTIONS)))}")
        if not row.get("input"):
            raise PlanError(f"{where}: 'input' is empty")
        video = _resolve(base, str(row["input"]))
        options = dict(defaults)
        for name, kind in VIDEO_OPTIONS.items():
            if name in row:
                options[name] = _convert(row[name], kind, f"{where}: {name}")
        output = _resolve(outdir, str(row["output"])) if row.get("output") else \
            _default_output(video, outdir)
        problem = None
        try:
            references = _manifest_references(base, row.get("references"), where)
        except PlanError as error:
            references, problem = References(), str(error)
        if problem is None and references.first() is None:
            problem = f"{where}: no reference given for {video.name}"
        jobs.append(VideoJob(index, video, output, references, options, problem))
    return jobs


def _manifest_references(base: Path, raw: Any, where: str) -> References:
    if raw is None or raw == "":
        return References()
    items = raw if isinstance(raw, list) else str(raw).split(";")
    main: Path | None = None
    keyframes: dict[int, Path] = {}
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        spec = parse_ref_option(item)
        if spec.frame is not None:
            path = _resolve(base, str(spec.path).strip())
            keyframes[spec.frame] = path
        else:
            path = _resolve(base, item)
            if path.is_dir():
                keyframes.update(_keyframes_in(path))
                continue
            if main is not None:
                raise PlanError(f"{where}: two main references ({main.name}, {path.name}); give "
                                "keyframe references as FRAME=PATH")
            main = path
        if not path.is_file():
            raise PlanError(f"{where}: reference not found: {path}")
    return References(main, tuple(sorted(keyframes.items())))


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _convert(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise PlanError(f"{where}: expected true/false, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise PlanError(f"{where}: expected {kind.__name__}, got {value!r}") from None


def _check_outputs(jobs: list[VideoJob], outdir: Path) -> None:
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen:
            raise PlanError(f"{seen[key]} and {job.input} would both write {job.output}; give "
                            "them distinct outputs in the manifest")
        seen[key] = job.input
        if job.output.suffix.lower() not in KEEP_CONTAINERS:
            raise PlanError(f"{job.output}: batch outputs are video files "
                            f"({', '.join(sorted(KEEP_CONTAINERS))})")
