"""The keyframe choice on numpy frames: one still per shot, alike shots grouped, bad frames
skipped, report suggestions added, bounded memory."""

from __future__ import annotations

import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from keyframe_clips import box_blur, film, shot_frames  # noqa: E402

from colorize.errors import ColorizeError, ShotListError  # noqa: E402
from colorize.references import (  # noqa: E402
    FIRST_FRAME,
    LOW_SCORE,
    SHOT_START,
    KeyframePicker,
    PickConfig,
    QualityConfig,
    Suggestion,
    gray_still,
    pick_keyframes,
)
from colorize.references.grouping import (  # noqa: E402
    DEFAULT_GROUP_THRESHOLD,
    describe,
    similarity,
)
from colorize.references.quality import luma_thumbnail, measure  # noqa: E402


def test_one_still_per_shot_and_the_returning_shot_shares_the_first_ones_group() -> None:
    clip = film()
    pick = pick_keyframes(enumerate(clip.frames), clip.cuts)
    assert [k.serves for k in pick.keyframes] == [0, 20, 36, 54]
    assert [k.reason for k in pick.keyframes] == [SHOT_START] * 4
    assert [(k.shot_start, k.shot_end) for k in pick.keyframes] == \
        [(0, 20), (20, 36), (36, 54), (54, 70)]
    assert [k.group for k in pick.keyframes] == [0, 1, 2, 0]
    # One still per group, taken inside the shot it is named for.
    assert [(s.group, s.serves) for s in pick.stills] == [(0, 0), (1, 20), (2, 36)]
    for still, keyframe in zip(pick.stills, pick.keyframes):
        assert keyframe.shot_start <= still.frame < keyframe.shot_end
        assert np.array_equal(still.rgb, clip.frames[still.frame])
    returning = pick.keyframes[3]
    assert (returning.source_frame, returning.still_serves) == (pick.stills[0].frame, 0)
    assert pick.cuts == clip.cuts and pick.frame_count == len(clip.frames)


def test_no_still_from_a_black_or_fading_frame() -> None:
    clip = film()
    pick = pick_keyframes(enumerate(clip.frames), clip.cuts)
    first = pick.keyframes[0]
    # The fade's frames (and the two after it, whose mean still rises over the look-back) are
    # measured as near-black or fading, so the still of shot 0 comes after them.
    assert first.source_frame >= clip.fade_end + 2
    assert all(not k.problems for k in pick.keyframes)
    faded = [measure(luma_thumbnail(clip.frames[i]), 0).problems(QualityConfig()) for i in (0, 1)]
    assert faded == [["near-black", "flat"], ["near-black", "flat"]]


def test_a_sharp_frame_wins_over_blurred_ones_and_a_blown_out_one_loses() -> None:
    frames = shot_frames(4, 24)
    sharp = {5, 19}
    frames = [f if i in sharp else box_blur(f) for i, f in enumerate(frames)]
    frames[12] = np.full_like(frames[12], 255)  # a flash in the middle
    pick = pick_keyframes(enumerate(frames), None, PickConfig(sample_every=1))
    assert pick.keyframes[0].source_frame in sharp
    assert pick.keyframes[0].reason == FIRST_FRAME


def test_the_middle_of_a_shot_is_preferred_among_equal_frames() -> None:
    frame = shot_frames(5, 1)[0]
    frames = [frame.copy() for _ in range(41)]
    pick = pick_keyframes(enumerate(frames), [0], PickConfig(sample_every=1, buckets=41),
                          frame_count=41)
    assert pick.keyframes[0].source_frame == 20


def test_report_suggestions_add_low_score_keyframes_of_their_own() -> None:
    clip = film()
    suggestions = [Suggestion(24, end=30), Suggestion(36), Suggestion(60, end=64)]
    pick = pick_keyframes(enumerate(clip.frames), clip.cuts, suggestions=suggestions)
    by_frame = {k.serves: k for k in pick.keyframes}
    assert sorted(by_frame) == [0, 20, 24, 36, 54, 60]
    assert pick.skipped_suggestions == [36]  # a shot start already
    for frame, end in ((24, 30), (60, 64)):
        keyframe = by_frame[frame]
        assert keyframe.reason == LOW_SCORE
        assert frame <= keyframe.source_frame < end
        assert keyframe.still_serves == frame
        # Its own group, although its picture is of a set-up with a group already.
        assert sum(k.group == keyframe.group for k in pick.keyframes) == 1
    assert (by_frame[24].shot_start, by_frame[24].shot_end) == (20, 36)
    assert len(pick.stills) == len({k.group for k in pick.keyframes}) == 5


def test_a_returning_shot_joins_its_set_ups_group_not_a_low_score_keyframes() -> None:
    clip = film()
    # A low-score keyframe inside shot 0 (set-up A) is decided before shot 0's own search ends.
    pick = pick_keyframes(enumerate(clip.frames), clip.cuts, suggestions=[Suggestion(12, end=16)],
                          frame_count=len(clip.frames))
    by_frame = {k.serves: k for k in pick.keyframes}
    assert by_frame[12].reason == LOW_SCORE
    assert by_frame[54].group == by_frame[0].group != by_frame[12].group
    assert by_frame[54].still_serves == 0


def test_without_shots_frame_0_and_the_suggestions() -> None:
    clip = film()
    pick = pick_keyframes(enumerate(clip.frames), None, suggestions=[Suggestion(40, end=45)])
    assert [(k.serves, k.reason) for k in pick.keyframes] == [(0, FIRST_FRAME), (40, LOW_SCORE)]
    assert pick.keyframes[0].source_frame >= clip.fade_end
    assert all((k.shot_start, k.shot_end) == (0, 70) for k in pick.keyframes)
    assert pick.cuts == []


def test_a_cut_detector_gives_the_shots() -> None:
    pytest.importorskip("scenedetect")
    from colorize.footage.shots import CutDetector

    clip = film()
    pick = pick_keyframes(enumerate(clip.frames), CutDetector())
    assert pick.cuts == clip.cuts
    assert [k.group for k in pick.keyframes] == [0, 1, 2, 0]


def test_a_high_threshold_keeps_every_shot_apart() -> None:
    clip = film()
    pick = pick_keyframes(enumerate(clip.frames), clip.cuts, PickConfig(group_threshold=1.0))
    assert [k.group for k in pick.keyframes] == [0, 1, 2, 3]


def test_descriptors_tell_set_ups_apart_and_forgive_a_pan_and_exposure() -> None:
    clip = film()
    a, b, c, a_again = (describe(luma_thumbnail(clip.frames[i])) for i in (12, 28, 45, 62))
    assert similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    assert similarity(a, a_again) > 0.95
    assert max(similarity(a, b), similarity(a, c), similarity(b, c)) < 0.6
    panned = shot_frames(1, 1, start=10)[0]  # the camera 10 px (15 %) to the side
    for gain in (0.8, 1.2):  # and exposed otherwise
        exposed = np.clip(panned * gain, 0, 255).astype(np.uint8)
        assert similarity(a, describe(luma_thumbnail(exposed))) > DEFAULT_GROUP_THRESHOLD
    # Half as bright: the same place lit otherwise, which wants its own reference.
    dark = (clip.frames[12] // 2).astype(np.uint8)
    assert similarity(a, describe(luma_thumbnail(dark))) < DEFAULT_GROUP_THRESHOLD


@pytest.mark.parametrize("frame_count", [None, 200])
def test_memory_holds_a_few_frames_not_the_shot(frame_count: int | None) -> None:
    config = PickConfig(sample_every=1, buckets=4)
    picker = KeyframePicker(config, cuts=[], frame_count=frame_count)
    alive = []
    for index, frame in enumerate(shot_frames(6, 200)):
        picker.feed(index, frame)
        alive.append(weakref.ref(frame))
        del frame
    held = sum(ref() is not None for ref in alive)
    # The end known ahead: the best candidate alone; else the best of each bucket.
    candidates = 1 if frame_count else config.buckets
    assert held <= candidates + config.quality.fade_span + 1
    picker.finish()


def test_bad_input() -> None:
    frames = shot_frames(7, 5)
    with pytest.raises(ShotListError, match="cut at frame 9 is past the last frame"):
        pick_keyframes(enumerate(frames), [3, 9])
    with pytest.raises(ColorizeError, match="no frames"):
        pick_keyframes(iter(()), None)
    with pytest.raises(ColorizeError, match="suggests frame 7, past the end"):
        pick_keyframes(enumerate(frames), None, suggestions=[Suggestion(7)])
    with pytest.raises(ValueError, match="frame 2 given where frame 1"):
        pick_keyframes([(0, frames[0]), (2, frames[1])], None)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pick_keyframes([(0, frames[0][..., 0])], None)


def test_gray_still_keeps_the_lab_lightness() -> None:
    torch = pytest.importorskip("torch")
    from colorize.color import rgb_to_lab

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gray = gray_still(rgb)
    lightness = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1))[0]
    gray_lightness = rgb_to_lab(torch.from_numpy(np.repeat(gray[..., None], 3, 2))
                                .permute(2, 0, 1))[0]
    # One 8-bit grey level is at most ~0.5 L apart (near black, where L is steepest).
    assert float((lightness - gray_lightness).abs().max()) < 0.6
    grey_frame = shot_frames(8, 1)[0]
    assert np.array_equal(gray_still(grey_frame), grey_frame[..., 0])
