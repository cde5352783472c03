"""Shots of the same set-up: a small colour-free descriptor per still and a greedy grouping.

A film cuts back and forth between the same places and people; one reference per set-up keeps
their colours the same in every shot. Two stills are alike when their *layout* and their *tones*
are alike and their *brightness* is about the same:

* layout: the luma thumbnail averaged down to 8x8, its mean removed, as a unit vector. The
  cosine of two layouts is 1 for the same picture at any exposure, near 0 for unrelated ones; a
  coarse grid keeps it high when the camera moved a little (a 15 % pan costs about 0.1).
* tones: a 32-bin histogram of the luma standardised to mean 0 and spread 1 (clipped at 2.5
  spreads), square-rooted, as a unit vector. The cosine of two is the Bhattacharyya coefficient
  of the histograms: 1 for the same distribution of tones, wherever things are in the frame, and
  the same when the returning shot is exposed a little differently.
* brightness: two stills whose mean luma differs by more than a factor of about 1.4 lose
  ``|log2(ratio)| - 0.5`` (a factor of 2 costs 0.5): the same place lit otherwise (night and
  day, lamps on and off) needs other colours, so another reference.

``similarity = (layout cosine + tone cosine) / 2 - brightness penalty``: 1 for the same picture.
No colour is used: the input is grey. Cheap (a 97-value descriptor per shot) and deterministic.

Grouping is greedy, in shot order: each shot joins the group whose first shot it is most alike
(if at least ``threshold``), else starts a new group. Comparing with a group's first shot (not
with every member) keeps a chain of slowly changing shots from drifting into one group.
On the synthetic set-ups of the tests (shapes on gradients, all drawn by one generator, so more
alike than real places) a returning set-up panned by up to 15 % and exposed 20 % differently
scores 0.88 or more, and the most alike pair of different set-ups 0.81; the default threshold,
0.85, sits between. No real footage was available to calibrate it, so it is a knob
(``colorize keyframes --group-threshold``): raise it when different set-ups share a group,
lower it when a returning set-up gets its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DEFAULT_GROUP_THRESHOLD", "ShotGrouper", "describe", "similarity"]

DEFAULT_GROUP_THRESHOLD = 0.85
LAYOUT_SIDE = 8
HISTOGRAM_BINS = 32
#: Spreads from the mean covered by the tone histogram (the rest goes to its end bins).
TONE_RANGE = 2.5
#: Brightness ratio (as |log2|) two stills of one set-up may differ by at no cost.
BRIGHTNESS_TOLERANCE = 0.5


def _block_means(values: np.ndarray, side: int) -> np.ndarray:
    """``values`` (2-D) averaged over a ``side`` x ``side`` grid of near-equal blocks."""
    rows = np.linspace(0, values.shape[0], side + 1).astype(int)
    cols = np.linspace(0, values.shape[1], side + 1).astype(int)
    # A picture smaller than the grid repeats its pixels instead of making empty blocks.
    rows = np.minimum(rows[:-1], values.shape[0] - 1)
    cols = np.minimum(cols[:-1], values.shape[1] - 1)
    sums = np.add.reduceat(np.add.reduceat(values, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, values.shape[0])).clip(min=1),
                      np.diff(np.append(cols, values.shape[1])).clip(min=1))
    return sums / counts


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else np.zeros_like(vector)


def describe(thumbnail: np.ndarray) -> np.ndarray:
    """Descriptor of a still from its luma thumbnail (float32, 0-255): layout, tones, and
    the mean luma last."""
    luma = thumbnail.astype(np.float64)
    layout = _block_means(luma, LAYOUT_SIDE).ravel()
    layout = _unit(layout - layout.mean())
    spread = float(luma.std())
    standard = (luma - luma.mean()) / spread if spread > 1e-6 else np.zeros_like(luma)
    histogram, _ = np.histogram(np.clip(standard, -TONE_RANGE, TONE_RANGE), bins=HISTOGRAM_BINS,
                                range=(-TONE_RANGE, TONE_RANGE))
    tones = _unit(np.sqrt(histogram.astype(np.float64)))
    return np.concatenate([layout, tones, [luma.mean()]]).astype(np.float32)


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    """How alike two descriptors are (module docstring): 1 for the same picture."""
    split = LAYOUT_SIDE * LAYOUT_SIDE
    layout = float(np.dot(first[:split], second[:split]))
    tones = float(np.dot(first[split:-1], second[split:-1]))
    # +8 levels: near-black stills are not told apart by noise in their means.
    ratio = abs(float(np.log2((first[-1] + 8.0) / (second[-1] + 8.0))))
    return (layout + tones) / 2 - max(0.0, ratio - BRIGHTNESS_TOLERANCE)


@dataclass
class ShotGrouper:
    """Assigns group ids (0, 1, ...) to stills in the order they are decided."""

    threshold: float = DEFAULT_GROUP_THRESHOLD
    _leaders: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # joinable groups
    _count: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not self.threshold <= 1.0:
            raise ValueError(f"group threshold must be at most 1, got {self.threshold}")

    def assign(self, descriptor: np.ndarray) -> tuple[int, bool]:
        """The group of a shot's still (an earlier shot's group it is alike enough, else a new
        one that later shots may join), and whether that group is new."""
        best, best_similarity = -1, -np.inf
        for group, leader in self._leaders.items():
            value = similarity(descriptor, leader)
            if value > best_similarity:
                best, best_similarity = group, value
        if best >= 0 and best_similarity >= self.threshold:
            return best, False
        group = self.new_group()
        self._leaders[group] = descriptor
        return group, True

    def new_group(self) -> int:
        """A group of its own, which no shot joins (a keyframe not grouped by likeness)."""
        self._count += 1
        return self._count - 1
