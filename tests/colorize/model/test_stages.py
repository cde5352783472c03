"""Stage-by-stage comparison with the official intermediates of the golden cases (frames 0, 1)."""

from __future__ import annotations

import torch

from colorize.color import rgb_to_normalized_lab
from colorize.memory import MemoryBank, MemoryConfig
from colorize.propagation import Padding

ATOL = 2e-5


def assert_close(ours: torch.Tensor, stored: torch.Tensor, name: str) -> None:
    """Big tensors were stored as their first 16 channels (axis 1 for 4-D, axis 2 for 5-D)."""
    if ours.shape != stored.shape:
        axis = 1 if ours.dim() == 4 else 2
        ours = ours.narrow(axis, 0, stored.shape[axis])
    assert ours.shape == stored.shape, name
    difference = (ours.float() - stored.float()).abs().max().item()
    assert difference <= ATOL * max(1.0, stored.abs().max().item()), f"{name}: {difference}"


def network_image(case, name, padding):
    lab = rgb_to_normalized_lab(torch.from_numpy(case.frame(name)).permute(2, 0, 1))
    return padding.apply(lab[None, :1]).expand(-1, 3, -1, -1)


@torch.inference_mode()
def test_stages_match_official_intermediates(golden_case, network):
    case = golden_case
    stored = case.intermediates()
    reference = rgb_to_normalized_lab(torch.from_numpy(case.reference()).permute(2, 0, 1))
    padding = Padding.for_size(*reference.shape[-2:], 112)
    reference_ab = padding.apply(reference[None, 1:])
    image0 = network_image(case, case.frame_names[0], padding)
    image1 = network_image(case, case.frame_names[1], padding)

    features0 = network.encode_key(image0)
    for name in ("key", "shrinkage", "selection", "f16", "f8", "f4"):
        assert_close(getattr(features0, name), stored[f"f0/encode_key/{name}#0"], name)

    memory = MemoryBank(MemoryConfig())
    hidden = network.empty_hidden(features0.key)
    if case.reference_is_first_frame:
        assert_close(reference_ab, stored["f0/encode_value/in_masks#0"], "in_masks")
        value0, hidden = network.encode_value(image0, features0.f16, hidden, reference_ab, True)
        assert_close(value0, stored["f0/encode_value/value#0"], "value")
        assert_close(hidden, stored["f0/encode_value/hidden#0"], "hidden")
        memory.add(features0.key, features0.shrinkage, value0, features0.selection)
        last_key, last_value = features0.key, value0
    else:
        exemplar_image = padding.apply(reference[None, :1]).expand(-1, 3, -1, -1)
        exemplar = network.encode_key(exemplar_image)
        assert_close(exemplar.key, stored["f0/encode_key/key#1"], "exemplar key")
        value_e, _ = network.encode_value(exemplar_image, exemplar.f16, hidden, reference_ab, False)
        assert_close(value_e, stored["f0/encode_value/value#0"], "exemplar value")
        memory.add(exemplar.key, exemplar.shrinkage, value_e, exemplar.selection)
        readout0 = memory.read(features0.key, features0.selection)
        assert_close(readout0, stored["f0/memory_readout#0"], "frame-0 readout")
        logits0, none = network.decode(features0, readout0, hidden, update_hidden=False)
        assert none is None
        assert_close(logits0, stored["f0/decoder/logits#0"], "frame-0 logits")
        value0, _ = network.encode_value(image0, features0.f16, hidden, torch.tanh(logits0), False)
        assert_close(value0, stored["f0/encode_value/value#1"], "frame-0 value")
        memory.add(features0.key, features0.shrinkage, value0, features0.selection)
        last_key, last_value = features0.key, value0

    features1 = network.encode_key(image1)
    assert_close(features1.key, stored["f1/encode_key/key#0"], "f1 key")
    readout = memory.read(features1.key, features1.selection)
    assert_close(readout, stored["f1/memory_readout#0"], "memory readout")
    short_term = network.short_term_attention(features1.key, last_key, last_value)
    assert_close(short_term, stored["f1/short_term_readout#0"], "short-term readout")
    logits, new_hidden = network.decode(features1, readout + short_term, hidden, update_hidden=True)
    assert_close(logits, stored["f1/decoder/logits#0"], "decoder logits")
    assert_close(new_hidden, stored["f1/decoder/hidden_out#0"], "decoder hidden")
