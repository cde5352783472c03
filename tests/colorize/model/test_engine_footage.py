"""Engine side of long footage: keyframe references in permanent memory, shot resets, and the
per-frame memory-match score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorize.engine import VideoGuide

from test_engine_state import SIZE, reference, video


def unrelated(count: int) -> list[np.ndarray]:
    """Content nothing like :func:`video`: a bright checkerboard with noise."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    board = np.where(((y // 8) + (x // 8)) % 2 == 0, 235.0, 20.0)
    frames = []
    for _ in range(count):
        gray = np.clip(board + rng.normal(0, 25, SIZE), 0, 255).astype(np.uint8)
        frames.append(np.repeat(gray[..., None], 3, axis=2))
    return frames


@pytest.fixture(scope="module")
def colorizer(small_memory_colorizer):
    return small_memory_colorizer


def predict(colorizer, frames, main, guide=None):
    return [ab.clone() for _, ab in colorizer.predict(frames, main, guide)]


def test_keyframe_reference_is_used_from_its_frame_on_and_never_evicted(colorizer):
    frames = video(12)
    plain = predict(colorizer, frames, reference(0))
    records = []
    guide = VideoGuide(keyframes={5: reference(3)}, on_frame=records.append)
    keyed = predict(colorizer, frames, reference(0), guide)
    bank = colorizer._video.propagator.memory
    hw = bank.elements_per_frame
    # Before its frame the keyframe changes nothing; from its frame on it does.
    for t in range(5):
        assert torch.equal(plain[t], keyed[t]), t
    assert not torch.equal(plain[5], keyed[5])
    # Consolidation and pruning ran, and both references are still there, each exactly once
    # (never re-injected).
    assert bank.compressions >= 3 and bank.prunings >= 1
    assert bank.permanent_elements == 2 * hw
    assert sorted(colorizer._video.encoded) == [0, 5]
    assert [r.reference for r in records] == [0] * 5 + [5] * 7
    # Its elements are the encoded keyframe, untouched by consolidation and pruning.
    encoded = colorizer._video.encoded[5]
    assert torch.equal(bank.work.keys[:, hw:2 * hw],
                       encoded.key.reshape(encoded.key.shape[1], hw))


def test_shot_after_a_cut_equals_that_shot_colorized_alone(colorizer):
    first, second = video(6), video(6, seed=3)[::-1]
    frames = first + second
    records = []
    guide = VideoGuide(keyframes={4: reference(4)}, is_cut=lambda t: t == 6,
                       on_frame=records.append)
    combined = predict(colorizer, frames, reference(0), guide)
    # The shot starting at 6 starts from the latest reference at or before it: frame 4's.
    alone = predict(colorizer, second, reference(4))
    for t, (a, b) in enumerate(zip(combined[6:], alone), start=6):
        assert torch.equal(a, b), f"frame {t}"
    assert [r.shot for r in records] == [0] * 6 + [1] * 6
    assert records[6].reference == 4


def test_score_is_in_range_and_drops_after_a_cut_to_unrelated_content(colorizer):
    frames = video(8) + unrelated(4)
    records = []
    predict(colorizer, frames, reference(0), VideoGuide(on_frame=records.append))
    assert [r.index for r in records] == list(range(12))
    scores = [r.score for r in records]
    assert all(0.0 <= s <= 1.0 for s in scores)
    before, after = np.mean(scores[2:8]), np.mean(scores[8:10])
    # The score is exp(-mean shrunk key distance per channel): the distance part (1 - score, for
    # scores near 1) must grow clearly after the cut, not just by rounding.
    assert after < before and (1 - after) > 1.3 * (1 - before), scores
