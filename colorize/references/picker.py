"""Which frames need a colour reference, and which picture each one should be coloured from.

:func:`pick_keyframes` reads the frames once, in order, and returns one :class:`Keyframe` per
frame that needs a reference, plus one :class:`Still` (the picture to colour) per group:

* With shots (a cut list, or a cut detector fed as the frames pass), every shot start is a
  keyframe (reason ``"shot start"``). Its picture is chosen from the shot's first
  ``search_frames`` frames: the one with the best :mod:`quality <colorize.references.quality>`
  score (near-black, blown-out, flat and fading frames lose to any acceptable one, sharp and
  well-exposed frames win), mildly preferring the middle of the frames searched. A reference
  applies from its frame on and the memory follows the shot's content, so a picture from far
  into a long shot would show what the memory meets late; hence the search limit.
* Shot starts whose pictures look alike (:mod:`~colorize.references.grouping`) share a group,
  and a group has one still: the picture of its first shot. Each shot start in the group
  still gets its own colour file (``ref_<shot start>.png``), made from that one still.
* Without shots: frame 0 (reason ``"first frame"``), its picture chosen the same way.
* Each :class:`Suggestion` (a low-confidence span of an earlier run's report) adds a keyframe
  at its frame (reason ``"low score"``), its picture chosen from the span (at most
  ``search_frames`` frames, never past the shot), preferring frames near the suggested one:
  the report picked that frame because it is where the memory lacks content. These keyframes
  are not grouped: they exist because the references around them did not fit. A suggestion at
  a frame that is already a keyframe adds nothing.

Only every ``sample_every``-th frame of a search is measured (counted from its first frame);
every frame's mean luma is taken for the fade check (a few thousand pixels). Memory stays
bounded: per open search one candidate frame, the best so far, when the search's end is known
ahead (a cut list, or a known frame count); otherwise (``--shots auto``, or the last shot of an
input of unknown length) at most ``buckets`` (the best one in each of ``buckets`` stretches of
``search_frames / buckets`` frames, ranked with the middle preference once the length is known,
so the preference works at that coarser grain). Plus a few frames waiting for the fade check's
look-ahead, and per shot a small descriptor.
Frames are kept by reference, not copied: the iterable must yield a new array for each frame
(decoders do).

Frame numbers are 0-based in decode order, as ``colorize --ref FRAME=PATH`` counts them; a
shot's ``end`` is exclusive. No torch and no file I/O here.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence

import numpy as np

from colorize.errors import ColorizeError, ShotListError
from colorize.references.grouping import DEFAULT_GROUP_THRESHOLD, ShotGrouper, describe
from colorize.references.quality import (
    FrameMeasures,
    QualityConfig,
    luma_thumbnail,
    mean_luma,
    measure,
)

if TYPE_CHECKING:  # pragma: no cover
    from colorize.footage.report import ConfidenceReport

__all__ = [
    "FIRST_FRAME",
    "Keyframe",
    "KeyframePick",
    "KeyframePicker",
    "LOW_SCORE",
    "PickConfig",
    "SHOT_START",
    "Still",
    "Suggestion",
    "gray_still",
    "pick_keyframes",
    "report_suggestions",
]

SHOT_START = "shot start"
LOW_SCORE = "low score"
FIRST_FRAME = "first frame"


class CutSource(Protocol):
    """What finds cuts while the frames pass (:class:`colorize.footage.shots.CutDetector`)."""

    def feed(self, rgb: np.ndarray) -> bool: ...


@dataclass(frozen=True)
class PickConfig:
    """Knobs of the choice (module docstring)."""

    quality: QualityConfig = field(default_factory=QualityConfig)
    group_threshold: float = DEFAULT_GROUP_THRESHOLD
    group_shots: bool = True
    sample_every: int = 2
    search_frames: int = 300
    buckets: int = 4
    #: How much a candidate at the edge of its search loses against one at the preferred
    #: place (the middle for a shot, the suggested frame for a low score): 0.2 = 20 %.
    position_preference: float = 0.2

    def __post_init__(self) -> None:
        if self.sample_every < 1:
            raise ValueError(f"sample_every must be >= 1, got {self.sample_every}")
        if self.search_frames < 1:
            raise ValueError(f"search_frames must be >= 1, got {self.search_frames}")
        if self.buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {self.buckets}")
        if not 0.0 <= self.position_preference < 1.0:
            raise ValueError("position_preference must be in [0, 1)")


@dataclass(frozen=True)
class Suggestion:
    """A frame an earlier run's report suggests as a keyframe; ``end`` (exclusive) closes its
    low-confidence span."""

    frame: int
    end: int | None = None


def report_suggestions(report: "ConfidenceReport") -> list[Suggestion]:
    """The keyframes an earlier run's confidence report suggests, one per low-confidence span."""
    return [Suggestion(span.keyframe, span.end) for span in report.low_confidence_spans()]


@dataclass(frozen=True)
class Keyframe:
    """One frame that needs a reference.

    ``serves``: the frame the reference applies from (a shot start, frame 0, or the report's
    suggestion); its colour file is ``ref_<serves>.png``. ``source_frame``: the frame the
    group's still was taken from (for the group's first keyframe, the best frame found for it;
    it may lie after ``serves``). ``shot``, ``shot_start``, ``shot_end`` (exclusive): the shot
    that holds ``serves`` (the whole video without shots). ``group``: keyframes of one group
    share one still; groups are numbered in the order their still is chosen. ``still_serves``:
    the first keyframe of the group, which names the still (``gray/ref_<still_serves>.png``).
    ``score``: the still's quality score; ``problems``: the checks its picture failed (empty
    when it is good; not empty only when the frames searched held nothing better).
    """

    serves: int
    source_frame: int
    shot: int
    shot_start: int
    shot_end: int
    group: int
    still_serves: int
    reason: str
    score: float
    problems: tuple[str, ...] = ()


@dataclass(eq=False)  # holds frames: compared by identity
class Still:
    """The picture one group is coloured from: the RGB frame ``frame``, named for ``serves``."""

    group: int
    serves: int
    frame: int
    score: float
    measures: FrameMeasures
    rgb: np.ndarray = field(repr=False)

    def gray(self) -> np.ndarray:
        return gray_still(self.rgb)


@dataclass
class KeyframePick:
    """Everything :func:`pick_keyframes` found; ``stills`` is empty when they went to
    ``on_still`` instead."""

    keyframes: list[Keyframe]
    stills: list[Still]
    frame_count: int
    cuts: list[int]
    skipped_suggestions: list[int]


# sRGB decoding table and the luminance row of the sRGB -> XYZ matrix that colorize.color uses.
_LINEAR = np.where(np.arange(256) / 255.0 > 0.04045,
                   ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
                   np.arange(256) / 255.0 / 12.92).astype(np.float32)
_Y_ROW = np.array((0.212671, 0.715160, 0.072169), dtype=np.float32)


def gray_still(rgb: np.ndarray) -> np.ndarray:
    """HxW uint8 grey whose Lab lightness equals the frame's (within rounding).

    Lab L depends on luminance Y only, so the grey level with the frame's Y is the one the
    colorizer sees as the same L; for grey footage (R = G = B) it is the frame itself.
    """
    y = (_LINEAR[rgb] @ _Y_ROW) / float(_Y_ROW.sum())
    encoded = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)
    return np.clip(np.rint(encoded * 255.0), 0, 255).astype(np.uint8)


@dataclass(eq=False)
class _Candidate:
    index: int
    quality: float
    measures: FrameMeasures
    thumbnail: np.ndarray
    rgb: np.ndarray


@dataclass(eq=False)
class _Search:
    """The frames searched for one keyframe and the best candidates found so far.

    When the search's end is known ahead (``exact``: a cut list, or a known frame count), each
    candidate is ranked as it arrives and only the best one is kept. Otherwise the best one by
    quality is kept in each bucket of ``bucket_frames`` frames, and the ranking, which needs the
    length searched, waits for the end.
    """

    serves: int
    reason: str
    limit: int  # first frame not searched
    exact: bool
    bucket_frames: int
    center: float  # preferred place, 0 = first frame searched, 1 = last
    preference: float
    buckets: dict[int, _Candidate] = field(default_factory=dict)
    last_seen: int = -1

    def wants(self, index: int, sample_every: int) -> bool:
        return self.serves <= index < self.limit and (index - self.serves) % sample_every == 0

    def rank(self, candidate: _Candidate, last: int) -> float:
        """Quality, less up to ``preference`` for distance from the preferred place among the
        frames ``serves`` to ``last``."""
        place = (candidate.index - self.serves) / max(1, last - self.serves)
        distance = abs(place - self.center) / max(self.center, 1 - self.center)
        return candidate.quality * (1.0 - self.preference * distance)

    def offer(self, candidate: _Candidate) -> None:
        if self.exact:
            held = self.buckets.get(0)
            last = self.limit - 1
            if held is None or self.rank(candidate, last) > self.rank(held, last):
                self.buckets[0] = candidate
            return
        bucket = (candidate.index - self.serves) // self.bucket_frames
        held = self.buckets.get(bucket)
        if held is None or candidate.quality > held.quality:
            self.buckets[bucket] = candidate

    def choose(self) -> _Candidate:
        last = self.limit - 1 if self.exact else self.last_seen
        best, best_rank = None, -1.0
        for candidate in sorted(self.buckets.values(), key=lambda c: c.index):
            rank = self.rank(candidate, last)
            if rank > best_rank:
                best, best_rank = candidate, rank
        assert best is not None  # a search always measures its first frame
        self.buckets.clear()  # the other frames are not needed any more
        return best


@dataclass(eq=False)
class _Pending:
    index: int
    rgb: np.ndarray
    thumbnail: np.ndarray
    searches: list[_Search]


class KeyframePicker:
    """The streaming core of :func:`pick_keyframes`: :meth:`feed` each frame, then
    :meth:`finish`. Stills are handed to ``on_still`` as soon as their group is decided."""

    def __init__(
        self,
        config: PickConfig | None = None,
        *,
        cuts: Sequence[int] | None = None,
        detector: CutSource | None = None,
        suggestions: Iterable[Suggestion] = (),
        on_still: Callable[[Still], None] | None = None,
        frame_count: int | None = None,
    ) -> None:
        if cuts is not None and detector is not None:
            raise ValueError("give cuts or a detector, not both")
        self.config = config or PickConfig()
        self._with_shots = cuts is not None or detector is not None
        self._cut_list = sorted(int(c) for c in cuts) if cuts is not None else None
        self._cut_set = set(self._cut_list or ())
        self._detector = detector
        self._frame_count = frame_count
        self._suggestions = sorted({int(s.frame): s for s in suggestions}.values(),
                                   key=lambda s: s.frame)
        self._next_suggestion = 0
        self._on_still = on_still
        self._grouper = ShotGrouper(self.config.group_threshold)
        self.cuts: list[int] = []
        self.keyframes: list[Keyframe] = []
        self.skipped_suggestions: list[int] = []
        self._frames = 0
        self._shot_index = 0
        self._shot_start = 0
        self._searches: list[_Search] = []  # open, this shot
        self._shot_searches: list[_Search] = []  # every search of this shot, by serves
        self._groups: dict[int, tuple[int, int, float, tuple[str, ...]]] = {}
        self._search_group: dict[int, int] = {}  # serves -> group
        self._means: deque[tuple[int, float]] = deque(maxlen=2 * self.config.quality.fade_span + 1)
        self._pending: deque[_Pending] = deque()

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, index: int, rgb: np.ndarray) -> None:
        """The next frame (RGB uint8 HxWx3, ``index`` = 0, 1, 2, ... in decode order)."""
        if index != self._frames:
            raise ValueError(f"frame {index} given where frame {self._frames} was expected")
        is_cut = self._detector.feed(rgb) if self._detector is not None else index in self._cut_set
        if index > 0 and is_cut:
            self._close_shot(index)
            self.cuts.append(index)
            self._shot_index += 1
            self._shot_start = index
        self._frames += 1
        if index == self._shot_start:
            self._open(index, SHOT_START if self._with_shots else FIRST_FRAME, None)
        self._open_suggestions(index)
        self._means.append((index, mean_luma(rgb)))
        span = self.config.quality.fade_span
        while self._pending and self._pending[0].index + span <= index:
            self._settle(self._pending.popleft(), last=index)
        for search in self._searches:
            search.last_seen = index if index < search.limit else search.last_seen
        wanted = [s for s in self._searches if s.wants(index, self.config.sample_every)]
        if wanted:
            self._pending.append(_Pending(index, rgb, luma_thumbnail(rgb), wanted))
        self._complete_searches(before=index + 1 - span)

    def finish(self) -> KeyframePick:
        """After the last frame: close the last shot and check the cuts and suggestions."""
        if self._frames == 0:
            raise ColorizeError("the input has no frames: nothing to pick keyframes from")
        if self._cut_list is not None:
            past = [cut for cut in self._cut_list if cut >= self._frames]
            if past:
                raise ShotListError(
                    f"cut at frame {past[0]} is past the last frame (the video has "
                    f"{self._frames} frames, 0-{self._frames - 1}); remove it or check the "
                    "frame numbers")
        late = [s.frame for s in self._suggestions if s.frame >= self._frames]
        if late:
            raise ColorizeError(
                f"the report suggests frame {late[0]}, past the end of the input ({self._frames} "
                "frames); give the report of a run on this input")
        self._close_shot(self._frames)
        return KeyframePick(keyframes=sorted(self.keyframes, key=lambda k: k.serves),
                            stills=[], frame_count=self._frames, cuts=list(self.cuts),
                            skipped_suggestions=list(self.skipped_suggestions))

    # -- searches ------------------------------------------------------------------------------

    def _open(self, serves: int, reason: str, end: int | None) -> None:
        limit = serves + self.config.search_frames
        if end is not None:
            limit = min(limit, max(end, serves + 1))
        # The shot's end is known ahead unless a detector finds it, or it is the last shot of
        # an input whose frame count is not known.
        exact = self._frame_count is not None
        if self._cut_list is not None:
            following = bisect.bisect_right(self._cut_list, serves)
            if following < len(self._cut_list):
                limit = min(limit, self._cut_list[following])
                exact = True
        if self._frame_count is not None:
            limit = min(limit, max(self._frame_count, serves + 1))
        exact = exact and self._detector is None
        bucket = max(1, -(-(limit - serves) // self.config.buckets))
        search = _Search(serves, reason, limit, exact, bucket,
                         0.5 if reason == SHOT_START else 0.0, self.config.position_preference)
        self._searches.append(search)
        self._shot_searches.append(search)

    def _open_suggestions(self, index: int) -> None:
        while (self._next_suggestion < len(self._suggestions)
               and self._suggestions[self._next_suggestion].frame <= index):
            suggestion = self._suggestions[self._next_suggestion]
            self._next_suggestion += 1
            if suggestion.frame == self._shot_start:
                self.skipped_suggestions.append(suggestion.frame)  # already a keyframe
                continue
            self._open(suggestion.frame, LOW_SCORE, suggestion.end)

    def _settle(self, pending: _Pending, last: int) -> None:
        """Measure a waiting frame now that the frames around it (up to ``last``, the shot's
        last frame so far) are known, and offer it."""
        rate = self._fade_rate(pending.index, last)
        measures = measure(pending.thumbnail, rate)
        quality = measures.score(self.config.quality)
        candidate = _Candidate(pending.index, quality, measures, pending.thumbnail, pending.rgb)
        for search in pending.searches:
            search.offer(candidate)

    def _fade_rate(self, index: int, last: int) -> float:
        """Largest mean-luma change per frame between ``index`` and the frames ``fade_span``
        before and after it, within the shot (which ends at ``last`` so far)."""
        means = dict(self._means)
        here = means[index]
        rate = 0.0
        span = self.config.quality.fade_span
        for other in (index - span, index + span):
            nearest = min(max(other, self._shot_start), last)
            while nearest not in means and nearest != index:
                nearest += 1 if nearest < index else -1
            if nearest != index:
                rate = max(rate, abs(means[nearest] - here) / abs(nearest - index))
        return rate

    def _complete_searches(self, before: int) -> None:
        """Choose for the searches whose every frame has been measured."""
        still_open = []
        for search in self._searches:
            if search.limit <= before and not any(search in p.searches for p in self._pending):
                self._decide(search)
            else:
                still_open.append(search)
        self._searches = still_open

    def _decide(self, search: _Search) -> None:
        chosen = search.choose()
        if search.reason == SHOT_START and self.config.group_shots:
            group, new = self._grouper.assign(describe(chosen.thumbnail))
        else:
            group, new = self._grouper.new_group(), True
        self._search_group[search.serves] = group
        if new:
            problems = tuple(chosen.measures.problems(self.config.quality))
            self._groups[group] = (search.serves, chosen.index, chosen.quality, problems)
            if self._on_still is not None:
                self._on_still(Still(group, search.serves, chosen.index, chosen.quality,
                                     chosen.measures, chosen.rgb))

    def _close_shot(self, end: int) -> None:
        """The shot ends before frame ``end``: measure what waits, decide, record keyframes.
        (Frame ``end`` itself is not in ``_means`` yet, so the fade check stays in the shot.)"""
        while self._pending:
            self._settle(self._pending.popleft(), last=end - 1)
        for search in self._searches:
            self._decide(search)
        self._searches = []
        for search in self._shot_searches:
            group = self._search_group.pop(search.serves)
            still_serves, source, score, problems = self._groups[group]
            self.keyframes.append(Keyframe(
                serves=search.serves, source_frame=source, shot=self._shot_index,
                shot_start=self._shot_start, shot_end=end, group=group,
                still_serves=still_serves, reason=search.reason, score=round(score, 4),
                problems=problems))
        self._shot_searches = []
        self._means.clear()


def pick_keyframes(
    frames: Iterable[tuple[int, np.ndarray]],
    shots: Sequence[int] | CutSource | None = None,
    config: PickConfig | None = None,
    *,
    suggestions: Iterable[Suggestion] = (),
    on_still: Callable[[Still], None] | None = None,
    frame_count: int | None = None,
) -> KeyframePick:
    """Pick keyframes from ``frames`` ((index, RGB uint8 HxWx3) in decode order, from 0).

    ``shots``: None (no shots: frame 0 only), the cut frames (first frames of shots, as
    :func:`colorize.footage.shots.read_shots_file` returns them; a cut at 0 is ignored), or a
    cut detector fed every frame (``CutDetector`` for ``--shots auto``). ``suggestions``: low-
    confidence keyframes of an earlier report. ``on_still`` receives each group's still as soon
    as it is chosen (to write it and let it go); without it the stills are returned in
    :attr:`KeyframePick.stills`. ``frame_count``, when known, lets the last shot's search know
    where it ends (the middle preference is then exact rather than per bucket). Raises
    :class:`~colorize.errors.ShotListError` for a cut past the end and
    :class:`~colorize.errors.ColorizeError` for no frames or a suggestion past the end.
    """
    collected: list[Still] = []
    if shots is None:
        cuts, detector = None, None
    elif hasattr(shots, "feed"):
        cuts, detector = None, shots  # type: ignore[assignment]
    else:
        cuts, detector = [int(c) for c in shots if int(c) != 0], None  # type: ignore[union-attr]
    picker = KeyframePicker(config, cuts=cuts, detector=detector, suggestions=suggestions,
                            on_still=on_still if on_still is not None else collected.append,
                            frame_count=frame_count)
    for index, rgb in frames:
        picker.feed(index, rgb)
    result = picker.finish()
    result.stills = sorted(collected, key=lambda s: s.serves)
    return result
