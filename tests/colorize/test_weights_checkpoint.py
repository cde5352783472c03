"""Reading, checking and converting checkpoints: what is accepted and how refusals read."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

import colorize.weights as weights
from colorize.weights import (
    ArchitectureMismatchError,
    CheckpointUnreadableError,
    WeightsPathError,
    check_state_dict,
    convert_checkpoint,
    load_checkpoint,
    verify_state_dict,
)

try:
    from .weights_fixtures import full_spec_entries, isolated_weights, small_state_dict
except ImportError:
    from weights_fixtures import full_spec_entries, isolated_weights, small_state_dict

__all__ = ["isolated_weights"]  # fixture used by name


class NotATensor:
    """A class pickled into a checkpoint: weights_only loading must refuse it."""


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_conversion_round_trip_gives_identical_tensors(tmp_path, isolated_weights):
    original = small_state_dict()
    src = tmp_path / "model.pth"
    torch.save(original, src)
    src_digest = _sha256(src)

    out = convert_checkpoint(src)

    assert out == tmp_path / "model.safetensors"
    assert _sha256(src) == src_digest  # the input is never modified
    converted = load_checkpoint(out)
    assert set(converted) == set(original)  # safetensors stores names sorted
    for key, tensor in original.items():
        assert converted[key].dtype == tensor.dtype, key
        assert torch.equal(converted[key], tensor), key
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_state_dict_inside_a_wrapper_dict_is_accepted(tmp_path, isolated_weights):
    original = small_state_dict()
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": original, "epoch": 7}, path)
    loaded = load_checkpoint(path)
    assert set(loaded) == set(original)
    assert all(torch.equal(loaded[k], original[k]) for k in original)


def test_a_wrapper_holding_more_than_tensors_is_refused(tmp_path, isolated_weights):
    path = tmp_path / "odd.pth"
    torch.save({"model": {"weight": torch.ones(2), "note": "text"}, "epoch": 3}, path)
    with pytest.raises(CheckpointUnreadableError, match="not a state_dict of named tensors"):
        load_checkpoint(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_files_are_refused_clearly(tmp_path, isolated_weights, suffix):
    good = tmp_path / ("good" + suffix)
    if suffix == ".pth":
        torch.save(small_state_dict(), good)
    else:
        convert_checkpoint(_saved_pth(tmp_path), good)
    data = good.read_bytes()
    truncated = tmp_path / ("truncated" + suffix)
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointUnreadableError) as caught:
        load_checkpoint(truncated)
    message = str(caught.value)
    assert str(truncated) in message and "damaged or truncated" in message
    assert "\n" not in message


def test_truncated_pth_is_not_converted(tmp_path, isolated_weights):
    src = _saved_pth(tmp_path)
    src.write_bytes(src.read_bytes()[:-200])
    with pytest.raises(CheckpointUnreadableError):
        convert_checkpoint(src, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == [src.name]


def test_files_that_are_not_checkpoints_are_refused(tmp_path, isolated_weights):
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointUnreadableError, match="is not a checkpoint"):
        load_checkpoint(text)
    with pytest.raises(CheckpointUnreadableError, match="is empty"):
        load_checkpoint(empty)
    with pytest.raises(WeightsPathError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(WeightsPathError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_pickled_objects_are_never_loaded(tmp_path, isolated_weights):
    path = tmp_path / "objects.pth"
    torch.save({"weight": torch.ones(1), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointUnreadableError, match="weights_only"):
        load_checkpoint(path)
    legacy = tmp_path / "legacy.pt"
    with open(legacy, "wb") as handle:
        pickle.dump({"extra": NotATensor()}, handle, protocol=2)
    with pytest.raises(CheckpointUnreadableError):
        load_checkpoint(legacy)


def test_wrong_architecture_lists_missing_mismatched_and_unexpected(tmp_path, isolated_weights):
    state = small_state_dict()
    del state["decoder.pred.bias"]
    state["key_encoder.conv1.weight"] = torch.zeros(64, 1, 7, 7)
    state["some_other_model.head.weight"] = torch.zeros(3)

    problems = check_state_dict(state)
    assert problems == [
        "missing decoder.pred.bias [1]",
        "key_encoder.conv1.weight has shape [64, 1, 7, 7], expected [64, 3, 7, 7]",
        "unexpected some_other_model.head.weight",
    ]
    src = tmp_path / "other.pth"
    torch.save(state, src)
    with pytest.raises(ArchitectureMismatchError) as caught:
        convert_checkpoint(src)
    message = str(caught.value)
    assert message.startswith(f"{src} does not match the ColorMNet architecture")
    assert "(1 missing, 1 wrong shape, 1 unexpected)" in message
    assert all(problem in message for problem in problems)
    assert not src.with_suffix(".safetensors").exists()


def test_matching_state_dict_passes(isolated_weights):
    assert check_state_dict(small_state_dict()) == []
    verify_state_dict(small_state_dict())


def test_real_spec_accepts_the_official_key_set_and_names_what_differs():
    # Shapes are all the check reads; expanded zero-dim tensors have them without the memory.
    entries = full_spec_entries()
    shaped = {e["key"]: torch.zeros(()).expand(e["shape"]) for e in entries}
    assert len(shaped) == 667
    assert check_state_dict(shaped) == []

    for entry in entries[:20]:
        del shaped[entry["key"]]
    with pytest.raises(ArchitectureMismatchError) as caught:
        verify_state_dict(shaped, label="other.pth")
    message = str(caught.value)
    assert "(20 missing)" in message and "; and 15 more;" in message
    assert entries[0]["key"] in message and entries[19]["key"] not in message


def test_output_must_be_safetensors_and_not_the_input(tmp_path, isolated_weights):
    src = _saved_pth(tmp_path)
    with pytest.raises(WeightsPathError, match="must end in .safetensors"):
        convert_checkpoint(src, tmp_path / "out.pth")
    with pytest.raises(WeightsPathError, match="does not exist"):
        convert_checkpoint(src, tmp_path / "no-such-folder" / "out.safetensors")


def test_checkpoint_shapes_reads_safetensors_headers_and_pth(tmp_path, isolated_weights):
    src = _saved_pth(tmp_path)
    out = convert_checkpoint(src)
    expected = {k: tuple(v.shape) for k, v in small_state_dict().items()}
    assert weights.checkpoint_shapes(out) == expected
    assert weights.checkpoint_shapes(src) == expected


def _saved_pth(folder):
    path = folder / "source.pth"
    torch.save(small_state_dict(), path)
    return path
