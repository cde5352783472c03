"""The pipeline holds the colorizer to its contract: same count, same shape, uint8."""

from __future__ import annotations

import io

import numpy as np
import pytest

from colorize.pipeline import run_colorization, to_stored, to_upright
from colorize.progress import ProgressReporter
from colorize.video.source import Frame, FrameMeta, SourceInfo, Source


class ListSource(Source):
    def __init__(self, frames: list[np.ndarray], rotation: int = 0) -> None:
        height, width = frames[0].shape[:2]
        self.info = SourceInfo(path=None, kind="video", width=width, height=height,
                               rotation=rotation, frame_count=len(frames))
        self._frames = frames

    def frames(self):
        for index, rgb in enumerate(self._frames):
            yield Frame(rgb, FrameMeta(index=index, pts=index, time_base=None))


class ListSink:
    def __init__(self) -> None:
        self.written: list[tuple[int, np.ndarray]] = []

    def write(self, rgb, meta) -> None:
        self.written.append((meta.index, rgb))


class Colorizer:
    def __init__(self, behaviour):
        self.behaviour = behaviour

    def colorize(self, frames, reference):
        return self.behaviour(frames)


def run(frames, behaviour):
    sink = ListSink()
    progress = ProgressReporter(total=len(frames), enabled=False, stream=io.StringIO())
    count = run_colorization(ListSource(frames), np.zeros((4, 6, 3), np.uint8),
                             Colorizer(behaviour), sink, progress)
    return count, sink


def frames(n=5):
    return [np.full((4, 6, 3), i, np.uint8) for i in range(n)]


def test_frames_are_written_in_order():
    count, sink = run(frames(), lambda fs: (f + 1 for f in fs))
    assert count == 5
    assert [index for index, _ in sink.written] == [0, 1, 2, 3, 4]
    assert [int(rgb[0, 0, 0]) for _, rgb in sink.written] == [1, 2, 3, 4, 5]


def test_a_colorizer_that_reads_ahead_is_fine():
    def batched(fs):
        batch = [next(fs), next(fs), next(fs)]
        yield from batch
        yield from fs

    count, sink = run(frames(), lambda fs: batched(iter(fs)))
    assert [index for index, _ in sink.written] == [0, 1, 2, 3, 4]


def test_dropping_frames_is_a_bug():
    def drop_last(fs):
        items = list(fs)
        yield from items[:-1]

    with pytest.raises(RuntimeError, match="4 frames but the input has 5"):
        run(frames(), drop_last)


def test_stopping_early_is_a_bug():
    def stop_early(fs):
        for index, frame in enumerate(fs):
            if index == 2:
                return
            yield frame

    with pytest.raises(RuntimeError, match="2 frames but the input has 5"):
        run(frames(), stop_early)


def test_extra_frames_are_a_bug():
    def duplicate(fs):
        for frame in fs:
            yield frame
            yield frame

    with pytest.raises(RuntimeError, match="more frames"):
        run(frames(), duplicate)


def test_wrong_shape_or_dtype_is_a_bug():
    with pytest.raises(RuntimeError, match="expected uint8"):
        run(frames(), lambda fs: (f.astype(np.float32) for f in fs))
    with pytest.raises(RuntimeError, match="expected uint8"):
        run(frames(), lambda fs: (f[:2] for f in fs))


@pytest.mark.parametrize("rotation", [0, 90, -90, 180, -180, 270])
def test_rotation_round_trip(rotation):
    stored = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    assert np.array_equal(to_stored(to_upright(stored, rotation), rotation), stored)


def test_minus_ninety_turns_clockwise():
    stored = np.zeros((2, 3, 3), np.uint8)
    stored[0, 0] = 255  # top-left
    upright = to_upright(stored, -90)
    assert upright.shape == (3, 2, 3)
    assert upright[0, -1, 0] == 255  # now top-right
