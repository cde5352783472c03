"""``--keep-shots``: every shot's encoded output kept beside the output, so that a later run
colorizes only the shots that changed.

A film cut into shots is colorized shot by shot anyway: at every cut the model's memory starts
again from the reference that applies to the shot, so a shot colorized on its own gives the
frames it gets in a run over the whole film. With ``--keep-shots`` each shot is therefore
colorized as a video of its own into a part (:mod:`colorize.footage.shot_parts`, as
``colorize batch --shots`` does), kept in ``<OUT>.colorize-shots/`` under its *fingerprint*, and
the output is joined from the parts by packet copy. A later run fingerprints every shot again
and colorizes only those whose fingerprint has no part in the folder.

A shot's fingerprint is a SHA-256 over

* its frames: a BLAKE2b digest of every decoded frame's pixels and time, so a re-cut, a
  re-export or a changed frame is seen however the file's bytes moved;
* the references that apply to it: the content hash of the one it starts from and of every
  keyframe reference inside it, with the frame each one takes effect at;
* the frame geometry and clock (size, rotation, rate, time base, pixel aspect), and whether it
  is the film's first shot (``--ref-is-first-frame`` applies only there);
* every setting that changes the output (:func:`~colorize.footage.knobs.run_knobs`: the engine
  configuration with the device and precision used, the weights' content, the output form and
  quality, the package, torch and PyAV versions), less the options the fingerprint already
  covers by content (``--shots``, ``--ref-dir``).

So new weights, another precision or crf change every fingerprint and every shot is redone;
replacing one reference changes exactly the shots it applies to. Frames are fingerprinted by
decoding them (without the model); the shots that need colorizing are then decoded a second
time, each reached by an exact seek (from the keyframe before it), so the unchanged ones are not
decoded again.

The folder holds, per shot, ``shot-<fingerprint>.mp4`` (``.mkv`` for PNG-frame output) with the
part's own sidecar, and ``shot-<fingerprint>.json``: what the fingerprint covered and the
confidence scores of the shot's frames (so ``--report`` covers reused shots too). It is written
last, so a shot counts as kept only when complete: an interrupted run loses at most the shot
it was colorizing. After a run the parts no shot used any more are deleted.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np

from colorize.errors import CorruptInputError, OutputExistsError, UnsupportedOutputError
from colorize.footage.fingerprint import JSON
from colorize.footage.shots import Shot, shots_from_cuts
from colorize.progress import ProgressReporter

if TYPE_CHECKING:  # pragma: no cover
    from colorize.engine.guide import FrameRecord
    from colorize.footage.setup import FootageSetup
    from colorize.video.source import Frame, Source, SourceInfo
    from colorize.video.target import OutputTarget

logger = logging.getLogger(__name__)

CACHE_SUFFIX = ".colorize-shots"
FORMAT = 1
#: Options whose effect the fingerprint covers by content, shot by shot.
COVERED_OPTIONS = ("shots", "reference_dir", "keep_shots")


def cache_folder(output: Path) -> Path:
    """Where ``--keep-shots`` keeps the shots of ``output``."""
    return output.with_name(output.name + CACHE_SUFFIX)


def resolve_kept_output(raw: str | None, info: "SourceInfo", overwrite: bool) -> "OutputTarget":
    """The output target; an output made by an earlier ``--keep-shots`` run (its shots folder
    is beside it) is replaced without ``--overwrite``: updating it is what the option is for."""
    from colorize.video.target import resolve_output

    try:
        target = resolve_output(raw, info, overwrite)
    except OutputExistsError:
        target = resolve_output(raw, info, True)
        if not cache_folder(target.path).is_dir():
            raise
    if target.kind == "image":
        raise UnsupportedOutputError("--keep-shots needs a video or PNG-frames output, not a "
                                     "single image")
    return target


# -- fingerprints ----------------------------------------------------------------------------

def frame_digest(frame: "Frame") -> bytes:
    """A digest of one decoded frame: its pixels and its time."""
    digest = hashlib.blake2b(np.ascontiguousarray(frame.rgb).data, digest_size=16)
    digest.update(f"{frame.meta.pts}/{frame.meta.time_base}".encode())
    return digest.digest()


def content_hash(path: Path) -> str:
    """SHA-256 of a whole file (references are small; nothing sampled)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def shot_settings(knobs: Mapping[str, JSON], info: "SourceInfo") -> dict[str, JSON]:
    """What every shot's fingerprint shares: the run's knobs (less what is covered per shot),
    the frame geometry and clock, and the PyAV version that encodes and joins the parts."""
    import av

    settings = {name: value for name, value in knobs.items() if name not in COVERED_OPTIONS}
    settings["av version"] = av.__version__
    settings["video"] = {
        "kind": info.kind, "width": info.width, "height": info.height, "rotation": info.rotation,
        "average_rate": str(info.average_rate), "time_base": str(info.time_base),
        "sample_aspect_ratio": str(info.sample_aspect_ratio),
    }
    return settings


@dataclass(frozen=True)
class ShotWork:
    """One shot of this run: the references it uses, its fingerprint and whether it is kept."""

    shot: Shot
    reference: int                     # frame of the reference the shot starts from
    keyframes: tuple[int, ...]         # keyframe references inside the shot
    fingerprint: str
    reused: bool


@dataclass
class ShotPlan:
    """Every shot of the film and which of them need colorizing."""

    folder: Path
    works: list[ShotWork]
    frame_count: int
    reason: str | None = None          # why nothing can be reused (weights not found...)

    @property
    def to_colorize(self) -> list[ShotWork]:
        return [work for work in self.works if not work.reused]

    @property
    def reused(self) -> list[ShotWork]:
        return [work for work in self.works if work.reused]

    def summary(self) -> str:
        frames = sum(work.shot.frame_count for work in self.to_colorize)
        return (f"{len(self.to_colorize)} of {len(self.works)} shots to colorize ({frames} of "
                f"{self.frame_count} frames), {len(self.reused)} reused from {self.folder}")

    def describe(self) -> list[str]:
        """For ``--plan``."""
        lines = [f"kept shots:       {self.summary()}"]
        if self.reason:
            lines.append(f"                  ({self.reason})")
        for work in self.works:
            shot = work.shot
            state = "reused" if work.reused else "colorize"
            lines.append(f"  shot {shot.index:>4}: frames {shot.start}-{shot.end - 1}: {state}")
        return lines


class ShotCache:
    """The folder of kept shots beside one output."""

    def __init__(self, target: "OutputTarget") -> None:
        self.target = target
        self.folder = cache_folder(target.path)
        self.part_suffix = ".mp4" if target.kind == "video" else ".mkv"

    def part(self, fingerprint: str) -> Path:
        return self.folder / f"shot-{fingerprint}{self.part_suffix}"

    def record(self, fingerprint: str) -> Path:
        return self.folder / f"shot-{fingerprint}.json"

    def holds(self, fingerprint: str, frames: int) -> bool:
        """Whether a complete part with this fingerprint and frame count is kept."""
        saved = self.read_record(fingerprint)
        part = self.part(fingerprint)
        complete = part.is_file() and (self.target.kind != "video"
                                       or part.with_name(part.name + ".json").is_file())
        return bool(saved) and complete and saved.get("frames") == frames \
            and saved.get("fingerprint") == fingerprint

    def read_record(self, fingerprint: str) -> dict[str, Any]:
        try:
            data = json.loads(self.record(fingerprint).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("format") == FORMAT else {}

    def keep(self, work: ShotWork, covered: dict[str, JSON], scores: list[list[Any]]) -> None:
        """Mark a shot's part complete (written last: a part without it is not reused)."""
        from colorize.footage.checkpoint import write_atomically

        record = {"format": FORMAT, "fingerprint": work.fingerprint,
                  "frames": work.shot.frame_count, "covers": covered, "scores": scores}
        write_atomically(self.record(work.fingerprint), json.dumps(record).encode())

    def prune(self, plan: ShotPlan) -> None:
        """Delete every file no shot of ``plan`` uses (old fingerprints, leftovers)."""
        wanted = set()
        for work in plan.works:
            part = self.part(work.fingerprint)
            wanted |= {part.name, part.name + ".json", self.record(work.fingerprint).name}
        removed = 0
        for path in self.folder.iterdir():
            if path.name not in wanted:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed += 1
        if removed:
            logger.debug("kept shots: %d old file(s) removed from %s", removed, self.folder)


def _covered(shot: Shot, reference: Path, keyframes: Mapping[int, Path], frames_hash: str,
             settings: Mapping[str, JSON]) -> dict[str, JSON]:
    """What one shot's fingerprint is taken over (see the module docstring)."""
    return {
        "format": FORMAT,
        "frames": {"count": shot.frame_count, "blake2b": frames_hash},
        "first shot": shot.start == 0,
        "reference": content_hash(reference),
        "keyframes": {str(frame - shot.start): content_hash(path)
                      for frame, path in sorted(keyframes.items())},
        "settings": dict(settings),
    }


def _fingerprint(covered: Mapping[str, JSON]) -> str:
    text = json.dumps(covered, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def plan_shots(source: "Source", target: "OutputTarget", footage: "FootageSetup",
               knobs: Mapping[str, JSON] | None, *, progress: ProgressReporter,
               reason: str | None = None) -> tuple[ShotPlan, dict[str, dict[str, JSON]]]:
    """Decode every frame once (no model) to fingerprint the shots (``--shots auto`` finds its
    cuts on the same pass), and look each one up in the cache. ``knobs`` None (the weights are
    not there yet, for ``--plan``): every shot is to be colorized, for ``reason``.

    Returns the plan and, by fingerprint, what each one covers."""
    from colorize.pipeline import to_upright

    digests: list[bytes] = []
    rotation = source.info.rotation
    for frame in source.frames():
        digests.append(frame_digest(frame))
        if footage.detector is not None:
            footage.observe(frame.meta.index, to_upright(frame.rgb, rotation))
        # Audio is copied by the join from the input itself: nothing queued here is needed.
        source.pending_packets(None)
        progress.advance()
    progress.finish()
    footage.finish(len(digests))      # a reference past the end is a mistake
    cuts = footage.detector.cuts if footage.detector is not None else footage.cuts or []
    shots = shots_from_cuts(cuts, len(digests))
    cache = ShotCache(target)
    settings = shot_settings(knobs, source.info) if knobs is not None else None
    works: list[ShotWork] = []
    covers: dict[str, dict[str, JSON]] = {}
    schedule = footage.schedule
    for shot in shots:
        reference = schedule.for_shot(shot.start)
        inside = {frame: path for frame, path in sorted(schedule.keyframes.items())
                  if shot.start < frame < shot.end}
        if settings is None:
            works.append(ShotWork(shot, reference, tuple(inside), "", False))
            continue
        frames_hash = hashlib.blake2b(b"".join(digests[shot.start:shot.end])).hexdigest()
        covered = _covered(shot, schedule.path(reference), inside, frames_hash, settings)
        fingerprint = _fingerprint(covered)
        covers[fingerprint] = covered
        works.append(ShotWork(shot, reference, tuple(inside), fingerprint,
                              cache.holds(fingerprint, shot.frame_count)))
    return ShotPlan(cache.folder, works, len(digests), reason), covers


# -- colorizing and joining ------------------------------------------------------------------

class _ShotFrames:
    """The frames of one shot after another from one open source: a shot that starts where
    the previous one ended continues the decode, any other is reached by an exact seek
    (:meth:`~colorize.video.source.Source.frames_from`: from the keyframe before it)."""

    def __init__(self, source: "Source") -> None:
        self._source = source
        self._frames: Iterator["Frame"] = iter(())
        self._held: "Frame | None" = None
        self._next = -1                    # the frame the current decode gives next

    def take(self, shot: Shot) -> Iterator["Frame"]:
        if self._next != shot.start:
            self._frames, self._held = self._source.frames_from(shot.start), None
        while True:
            frame = self._held if self._held is not None else next(self._frames, None)
            self._held = None
            if frame is None:
                self._next = -1
                return
            self._source.pending_packets(None)   # audio comes from the input at the join
            if frame.meta.index >= shot.end:
                self._held, self._next = frame, frame.meta.index
                return
            self._next = frame.meta.index + 1
            yield frame


def colorize_shots(plan: ShotPlan, covers: Mapping[str, dict[str, JSON]],
                   reopen: Callable[[], "Source"], target: "OutputTarget",
                   footage: "FootageSetup", colorizer: Any, crf: int | None,
                   progress: ProgressReporter) -> None:
    """Colorize the shots ``plan`` does not reuse, each alone, into the cache."""
    from colorize.footage.shot_parts import part_writer
    from colorize.pipeline import to_upright
    from colorize.reference import load_reference

    cache = ShotCache(target)
    todo = plan.to_colorize
    if not todo:
        return
    cache.folder.mkdir(parents=True, exist_ok=True)
    with reopen() as source:
        info = source.info
        frames = _ShotFrames(source)
        for work in todo:
            shot = work.shot
            size = info.upright_size
            reference = load_reference(footage.schedule.path(work.reference), size)
            keyframes = {frame - shot.start: load_reference(footage.schedule.keyframes[frame], size)
                         for frame in work.keyframes}
            scores: list[list[Any]] = []
            metas: list[Any] = []

            def upright(shot: Shot = shot) -> Iterator[np.ndarray]:
                for frame in frames.take(shot):
                    metas.append(frame.meta)
                    yield to_upright(frame.rgb, info.rotation)

            with _alone(colorizer, first_shot=shot.start == 0):
                results = _colorize_one(colorizer, upright(), reference, keyframes, scores, shot)
                with part_writer(cache.part(work.fingerprint), target, source, crf) as writer:
                    for index, rgb in enumerate(results):
                        writer.write(rgb, metas[index])
                        progress.advance()
            if writer.count != shot.frame_count:
                raise CorruptInputError(
                    f"shot {shot.index} (frames {shot.start}-{shot.end - 1}) decoded "
                    f"{writer.count} frames; the input changed during the run?",
                    frames_decoded=shot.start + writer.count)
            cache.keep(work, covers[work.fingerprint], scores)
            logger.debug("kept shot %d (frames %d-%d) as %s", shot.index, shot.start,
                         shot.end - 1, cache.part(work.fingerprint).name)
    progress.finish()


def _colorize_one(colorizer: Any, frames: Iterator[np.ndarray], reference: np.ndarray,
                  keyframes: dict[int, np.ndarray], scores: list[list[Any]],
                  shot: Shot) -> Iterator[np.ndarray]:
    """The shot as a video of its own; the engine's per-frame scores are collected when it
    gives them (a colorizer without a guide, as in some tests, gives none)."""
    from colorize.engine.guide import VideoGuide

    if "guide" not in inspect.signature(colorizer.colorize).parameters:
        if keyframes:
            raise RuntimeError("keyframe references need a colorizer that takes a guide")
        return colorizer.colorize(frames, reference)

    def record(frame: "FrameRecord") -> None:
        # The reference is kept as a film frame: 0 inside the shot is the shot's own start one.
        scores.append([frame.index, frame.score, frame.reference])

    guide = VideoGuide(keyframes=keyframes, on_frame=record)
    return colorizer.colorize(frames, reference, guide=guide)


@contextmanager
def _alone(colorizer: Any, *, first_shot: bool) -> Iterator[None]:
    """``--ref-is-first-frame`` applies to the film's first frame only: a later shot alone
    starts from its reference as any cut does."""
    config = getattr(colorizer, "config", None)
    if first_shot or config is None or not getattr(config, "reference_is_first_frame", False):
        yield
        return
    colorizer.config = replace(config, reference_is_first_frame=False)
    try:
        yield
    finally:
        colorizer.config = config


def join_shots(plan: ShotPlan, reopen: Callable[[], "Source"], target: "OutputTarget",
               footage: "FootageSetup", crf: int | None) -> int:
    """The output from the kept parts (packet copy for video), the report from their scores,
    and the parts no shot uses any more deleted. Returns the frame count."""
    from colorize.footage.shot_parts import join_encoded_parts, write_frames_of_parts

    cache = ShotCache(target)
    parts = [cache.part(work.fingerprint) for work in plan.works]
    with reopen() as source:
        if target.kind == "video":
            frames = join_encoded_parts(parts, target, source)
        else:
            frames = write_frames_of_parts(parts, target, source, crf)
    if footage.report is not None:
        _fill_report(plan, cache, footage)
    cache.prune(plan)
    return frames


def _fill_report(plan: ShotPlan, cache: ShotCache, footage: "FootageSetup") -> None:
    schedule = footage.schedule
    for work in plan.works:
        shot = work.shot
        for index, score, reference in cache.read_record(work.fingerprint).get("scores", []):
            frame = work.reference if reference == 0 else shot.start + int(reference)
            footage.report.add(shot.start + int(index), score,
                               reference=str(schedule.path(frame)), shot=shot.index)


# -- the whole run ---------------------------------------------------------------------------

def plan_shots_quietly(source: "Source", target: "OutputTarget", footage: "FootageSetup",
                       knobs: Mapping[str, JSON] | None, *, reason: str | None = None) -> ShotPlan:
    """:func:`plan_shots` without progress (``--plan``)."""
    return plan_shots(source, target, footage, knobs, reason=reason,
                      progress=ProgressReporter(total=None, enabled=False))[0]


def run_keeping_shots(source: "Source", reopen: Callable[[], "Source"], target: "OutputTarget",
                      footage: "FootageSetup", knobs: Mapping[str, JSON],
                      build_colorizer: Callable[[], Any], *, crf: int | None,
                      quiet: bool) -> ShotPlan:
    """``colorize --keep-shots``: fingerprint the shots of ``source``, colorize those the cache
    does not hold (the model is loaded only if there is one), join the output from every
    shot's part and write the report. Returns the plan that was carried out."""
    info = source.info
    logger.info("kept shots: fingerprinting the frames of %s", info.path.name)
    scan = ProgressReporter(total=info.frame_count, total_is_estimate=info.frame_count_is_estimate,
                            enabled=not quiet)
    plan, covers = plan_shots(source, target, footage, knobs, progress=scan)
    logger.info("kept shots: %s", plan.summary())
    if plan.to_colorize:
        frames = sum(work.shot.frame_count for work in plan.to_colorize)
        progress = ProgressReporter(total=frames, enabled=not quiet)
        colorize_shots(plan, covers, reopen, target, footage, build_colorizer(), crf, progress)
    join_shots(plan, reopen, target, footage, crf)
    for path in footage.write_report():
        logger.info("report: %s", path)
    logger.info("shots: %d colorized, %d reused", len(plan.to_colorize), len(plan.reused))
    return plan
