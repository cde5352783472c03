"""The per-frame schedule of ColorMNet (memory frames, hidden updates, consolidation), checked
on a recording stand-in for the network so that 100-frame timelines run in milliseconds."""

from __future__ import annotations

import pytest
import torch

from colorize.memory import MemoryConfig
from colorize.model import KeyFeatures
from colorize.propagation import ScheduleConfig, VideoPropagator

GRID = (2, 3)


class RecordingNetwork:
    """Implements the stages with cheap tensors and records which ran, frame by frame."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []
        self.frame = 0

    def empty_hidden(self, key):
        return torch.zeros(1, 2, 4, *GRID)

    def encode_value(self, image, f16, hidden, colour, deep_update):
        self.calls.append(("value", self.frame, deep_update))
        return torch.randn(1, 2, 6, *GRID), hidden + 1 if deep_update else hidden

    def short_term_attention(self, key, last_key, last_value):
        self.calls.append(("short_term", self.frame, False))
        return torch.zeros(1, 2, 6, *GRID)

    def decode(self, features, readout, hidden, update_hidden):
        self.calls.append(("decode", self.frame, update_hidden))
        return torch.zeros(1, 2, 8, 8), (hidden + 1 if update_hidden else None)

    def frames_with(self, stage: str, flag: bool | None = None) -> list[int]:
        return [t for name, t, f in self.calls if name == stage and (flag is None or f == flag)]


def features() -> KeyFeatures:
    return KeyFeatures(torch.randn(1, 4, *GRID), torch.rand(1, 1, *GRID) + 1,
                       torch.rand(1, 4, *GRID), torch.zeros(1), torch.zeros(1), torch.zeros(1))


def run(mode: str, length: int, schedule=ScheduleConfig(), memory=MemoryConfig(top_k=3)):
    network = RecordingNetwork()
    propagator = VideoPropagator(network, memory, schedule)
    compressions = []
    image = torch.zeros(1, 3, 8, 8)
    colour = torch.zeros(1, 2, 8, 8)
    for t in range(length):
        network.frame = t
        before = propagator.memory.compressions
        last = t == length - 1
        if t == 0 and mode == "A":
            out = propagator.start_with_reference_frame(image, features(), colour, last)
        elif t == 0:
            out = propagator.start_with_exemplar(image, features(), image, features(), colour, last)
        else:
            out = propagator.step(image, features(), last)
        assert out.shape == (1, 2, 8, 8)
        if propagator.memory.compressions > before:
            compressions.append(t)
    return network, propagator, compressions


def test_mode_a_timeline_with_defaults():
    network, propagator, compressions = run("A", 100)
    assert compressions == [45, 70, 95]
    assert network.frames_with("value", True) == list(range(0, 100, 5))        # deep updates
    assert network.frames_with("value", False) == []
    assert network.frames_with("short_term") == list(range(1, 100))
    normal = [t for t in range(1, 99) if t % 5]
    assert network.frames_with("decode", True) == normal
    assert 99 in network.frames_with("decode", False)                          # last frame
    assert propagator.memory.work.size == 5 * 6      # consolidated at t=95: first + newest 4


def test_mode_b_timeline_with_defaults():
    network, _, compressions = run("B", 100)
    assert compressions == [40, 65, 90]
    # Exemplar and frame 0 are value-encoded without a deep update; then every 5th frame with.
    assert network.frames_with("value", False) == [0, 0]
    assert network.frames_with("value", True) == list(range(5, 100, 5))
    assert network.frames_with("short_term") == list(range(1, 100))            # not at frame 0
    assert network.frames_with("decode", True) == [t for t in range(1, 99) if t % 5]
    assert network.frames_with("decode", False)[0] == 0


def test_independent_deep_update_schedule():
    network, _, _ = run("A", 20, ScheduleConfig(mem_every=5, deep_update_every=3))
    assert network.frames_with("value", True) == [0, 5, 10, 15]   # 3 frames since the last one
    # Unsynchronised: the decoder updates the hidden state on every segmented frame but the last.
    assert network.frames_with("decode", True) == list(range(1, 19))


def test_without_long_term_memory_work_grows_and_nothing_consolidates():
    _, propagator, compressions = run("A", 60, memory=MemoryConfig(top_k=3, enable_long_term=False))
    assert compressions == []
    assert propagator.memory.work.size == 12 * 6


@pytest.mark.parametrize("mode", ["A", "B"])
def test_single_frame_video(mode):
    network, propagator, _ = run(mode, 1)
    assert propagator.frame_index == 0
    assert network.frames_with("value", True) == []     # a last frame is never memorised


def test_memory_stays_bounded_over_a_long_video():
    memory = MemoryConfig(top_k=3, max_long_term_elements=300, num_prototypes=20)
    _, propagator, compressions = run("A", 2000, memory=memory)
    assert propagator.memory.prunings > 0
    assert propagator.memory.long.size <= 300
    assert propagator.memory.work.size <= 10 * 6
    assert len(compressions) > 50
