"""The synthetic checkpoint (built from the official key spec) loads strictly into our network."""

from __future__ import annotations

import pytest
import torch

from colorize.model import ColorMNet, ModelConfig


def test_every_key_and_shape_matches_the_spec(network, checkpoint_spec):
    ours = network.state_dict()
    expected = {entry["key"]: tuple(entry["shape"]) for entry in checkpoint_spec}
    assert set(ours) == set(expected)
    mismatched = {k: (tuple(v.shape), expected[k]) for k, v in ours.items()
                  if tuple(v.shape) != expected[k]}
    assert mismatched == {}
    assert len(ours) == 667


def test_loaded_values_are_the_checkpoint_values(network, synthetic_state_dict):
    ours = network.state_dict()
    for key in ("key_encoder.network2.backbone.pos_embed", "decoder.pred.weight",
                "short_term_attn.projection.bias", "key_encoder.layer3.5.bn3.running_var"):
        assert torch.equal(ours[key], synthetic_state_dict[key])


def test_strict_loading_rejects_a_missing_key(synthetic_state_dict):
    broken = dict(synthetic_state_dict)
    del broken["decoder.pred.bias"]
    with pytest.raises(RuntimeError, match="decoder.pred.bias"):
        ColorMNet.from_state_dict(broken)


def test_config_is_read_and_checked_from_the_checkpoint(synthetic_state_dict):
    assert ModelConfig.from_state_dict(synthetic_state_dict) == ModelConfig()
    other = dict(synthetic_state_dict)
    other["key_proj.key_proj.weight"] = torch.zeros(32, 1024, 3, 3)
    with pytest.raises(ValueError, match="key=32"):
        ModelConfig.from_state_dict(other)
    with pytest.raises(ValueError, match="missing"):
        ModelConfig.from_state_dict({})
