"""Memory bank: readout against the dense official formulation, consolidation, pruning, bounds."""

from __future__ import annotations

import math

import pytest
import torch

from colorize.memory import INITIAL_LIFE, MemoryBank, MemoryConfig, similarity, weighted_rows

CK, CV, H, W = 8, 6, 3, 4
HW = H * W


def random_frame(generator):
    key = torch.randn(1, CK, H, W, generator=generator)
    shrinkage = torch.rand(1, 1, H, W, generator=generator) + 1
    selection = torch.rand(1, CK, H, W, generator=generator)
    value = torch.randn(1, 2, CV, H, W, generator=generator)
    return key, shrinkage, value, selection


def dense_readout(bank: MemoryBank, key, selection):
    """The official form: dense similarity, top-k softmax without max subtraction scattered
    into a dense affinity, values times affinity; long-term elements first."""
    stores = [s for s in (bank.long, bank.work) if s.size]
    mk = torch.cat([s.keys for s in stores], 1)
    ms = torch.cat([s.shrinkage for s in stores], 0)
    mv = torch.cat([s.values for s in stores], 0).t()          # (2*CV, N)
    qk, qe = key.reshape(CK, HW), selection.reshape(CK, HW)
    a_sq = mk.pow(2).t() @ qe
    two_ab = 2 * (mk.t() @ (qk * qe))
    b_sq = (qe * qk.pow(2)).sum(0, keepdim=True)
    scores = (-a_sq + two_ab - b_sq) * ms[:, None] / math.sqrt(CK)
    top = min(bank.config.top_k, scores.shape[0])
    values, index = scores.topk(top, dim=0)
    weights = values.exp()
    weights = weights / weights.sum(0, keepdim=True)
    affinity = torch.zeros_like(scores).scatter_(0, index, weights)
    return (mv @ affinity).reshape(1, 2, CV, H, W), affinity.sum(1)


def test_similarity_is_the_negative_weighted_distance():
    g = torch.Generator().manual_seed(1)
    mk, qk = torch.randn(CK, 5, generator=g), torch.randn(CK, 7, generator=g)
    ms, qe = torch.rand(5, generator=g) + 1, torch.rand(CK, 7, generator=g)
    direct = -(ms[:, None] * (qe[:, None, :] * (mk[:, :, None] - qk[:, None, :]) ** 2).sum(0)) \
        / math.sqrt(CK)
    torch.testing.assert_close(similarity(mk, ms, qk, qe), direct.t(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("long_term", [True, False])
def test_readout_equals_dense_formulation_and_counts_usage(long_term):
    g = torch.Generator().manual_seed(2)
    config = MemoryConfig(top_k=5, max_mid_term_frames=4, min_mid_term_frames=2, num_prototypes=6,
                          max_long_term_elements=40, enable_long_term=long_term,
                          readout_block_elements=17)   # forces several query blocks
    bank = MemoryBank(config)
    for _ in range(6):
        bank.add(*random_frame(g))
    if long_term:
        assert bank.long.size > 0     # the readout spans [long ; work]
    key, _, _, selection = random_frame(g)
    expected, usage = dense_readout(bank, key, selection)
    work_use_before = bank.work.use.clone() if long_term else None
    ours = bank.read(key, selection)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    if long_term:
        torch.testing.assert_close(bank.work.use - work_use_before, usage[bank.long.size:],
                                   atol=1e-5, rtol=1e-5)
        assert torch.all(bank.work.life >= 1)


def test_consolidation_keeps_first_and_newest_entries_and_makes_prototypes():
    g = torch.Generator().manual_seed(3)
    config = MemoryConfig(top_k=4, max_mid_term_frames=5, min_mid_term_frames=3, num_prototypes=7,
                          max_long_term_elements=1000)
    bank = MemoryBank(config)
    frames = [random_frame(g) for _ in range(5)]
    for frame in frames[:4]:
        bank.add(*frame)
        bank.read(frames[0][0], frames[0][3])         # give elements some usage
    usage_before = (bank.work.use / bank.work.life).clone()
    keys_before = bank.work.keys.clone()
    bank.add(*frames[4])                               # reaches 5 frames: consolidate
    assert bank.compressions == 1
    # Work keeps the first entry and the newest min-1 = 2 entries.
    kept = torch.cat([frames[i][0].reshape(CK, HW) for i in (0, 3, 4)], 1)
    torch.testing.assert_close(bank.work.keys, kept)
    assert bank.long.size == 7
    # Prototypes are the candidates (entries 1..2) with the highest normalised usage, in order.
    candidate_usage = usage_before[HW:3 * HW]
    order = candidate_usage.argsort(descending=True)[:7]
    torch.testing.assert_close(bank.long.keys, keys_before[:, HW:3 * HW][:, order])
    # Fresh long-term counters.
    assert torch.all(bank.long.use == 0)
    assert torch.allclose(bank.long.life, torch.full((7,), INITIAL_LIFE))


def test_prototype_values_are_softmax_weighted_candidates():
    g = torch.Generator().manual_seed(4)
    config = MemoryConfig(max_mid_term_frames=3, min_mid_term_frames=2, num_prototypes=HW,
                          max_long_term_elements=1000)
    bank = MemoryBank(config)
    frames = [random_frame(g) for _ in range(3)]
    for frame in frames:
        bank.add(*frame)
    key, shrinkage, value, selection = frames[1]     # the only candidate frame
    ck, cs = key.reshape(CK, HW), shrinkage.reshape(HW)
    cv, ce = value.reshape(2 * CV, HW), selection.reshape(CK, HW)
    order = torch.arange(HW)   # all usages equal (zero): topk order is implementation's
    picked = [int((ck.t() == k).all(1).nonzero()[0]) for k in bank.long.keys.t()]
    weights = similarity(ck, cs, ck[:, picked], ce[:, picked]).softmax(1).t()
    torch.testing.assert_close(bank.long.values, (cv @ weights).t(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bank.long.shrinkage, cs @ weights, atol=1e-5, rtol=1e-5)
    assert sorted(picked) == order.tolist()


def test_pruning_drops_least_used_and_bounds_long_term_memory():
    g = torch.Generator().manual_seed(5)
    config = MemoryConfig(top_k=3, max_mid_term_frames=3, min_mid_term_frames=2, num_prototypes=5,
                          max_long_term_elements=16)
    bank = MemoryBank(config)
    query = random_frame(g)
    for _ in range(40):
        bank.add(*random_frame(g))
        bank.read(query[0], query[3])
        assert bank.long.size <= config.max_long_term_elements
        assert bank.work.size <= config.max_mid_term_frames * HW
    assert bank.prunings > 0


def test_pruning_rule_keeps_strictly_greater_than_threshold():
    bank = MemoryBank(MemoryConfig(num_prototypes=2, max_long_term_elements=6))
    bank.long.append(torch.arange(8.0)[None].repeat(CK, 1), torch.ones(8),
                     torch.zeros(8, 2 * CV), None)
    bank.long.use = torch.tensor([5.0, 1.0, 3.0, 1.0, 4.0, 2.0, 6.0, 3.0])
    bank.long.life = torch.ones(8)
    bank._prune_long_term(target_size=5)   # 3 must go: the 3 smallest are 1, 1, 2 -> threshold 2
    assert bank.long.keys[0].tolist() == [0.0, 2.0, 4.0, 6.0, 7.0]


def test_weighted_rows_equals_a_gathered_weighted_sum():
    g = torch.Generator().manual_seed(6)
    rows = torch.randn(9, 5, generator=g)
    index = torch.randint(0, 9, (4, 3), generator=g)
    weights = torch.rand(4, 3, generator=g)
    expected = (weights[:, :, None] * rows[index]).sum(1)
    torch.testing.assert_close(weighted_rows(rows, index, weights), expected)


def test_reads_between_writes_see_every_write():
    """The joined [long; work] copy used for reading is rebuilt after each write, through
    consolidation and pruning."""
    g = torch.Generator().manual_seed(7)
    config = MemoryConfig(top_k=4, max_mid_term_frames=3, min_mid_term_frames=2, num_prototypes=5,
                          max_long_term_elements=12)
    bank = MemoryBank(config)
    query = random_frame(g)
    for _ in range(12):
        bank.add(*random_frame(g))
        expected, _ = dense_readout(bank, query[0], query[3])
        torch.testing.assert_close(bank.read(query[0], query[3]), expected, atol=1e-5, rtol=1e-5)
    assert bank.compressions > 0 and bank.prunings > 0
