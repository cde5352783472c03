"""Finding the checkpoint: search order, offline mode, first-run download and conversion."""

from __future__ import annotations

import logging

import pytest
import torch

import colorize.weights.locations as locations
from colorize.weights import (
    ChecksumMismatchError,
    WeightsNotFoundError,
    WeightsPathError,
    load_checkpoint,
    resolve_checkpoint,
)

try:
    from .weights_fixtures import (
        checkpoint_server,
        isolated_weights,
        small_checkpoint_bytes,
        small_state_dict,
    )
except ImportError:
    from weights_fixtures import (
        checkpoint_server,
        isolated_weights,
        small_checkpoint_bytes,
        small_state_dict,
    )

__all__ = ["checkpoint_server", "isolated_weights"]  # fixtures used by name

NAME = "DINOv2FeatureV6_LocalAtten_s2_154000"


def _place(folder, filename):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(small_state_dict(), str(path))
    else:
        torch.save(small_state_dict(), path)
    return path


def test_search_order_is_flag_then_env_then_checkout_then_cache(
    tmp_path, monkeypatch, isolated_weights
):
    cache_file = _place(isolated_weights, NAME + ".safetensors")
    assert resolve_checkpoint(allow_download=False) == cache_file

    checkout = tmp_path / "checkout" / "checkpoints"
    checkout_file = _place(checkout, NAME + ".safetensors")
    monkeypatch.setattr(locations, "checkout_checkpoints_dir", lambda: checkout)
    assert resolve_checkpoint(allow_download=False) == checkout_file

    env_file = _place(tmp_path / "env", "mine.safetensors")
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(env_file))
    assert resolve_checkpoint(allow_download=False) == env_file

    flag_file = _place(tmp_path / "flag", "flag.pth")
    assert resolve_checkpoint(flag_file, allow_download=False) == flag_file
    assert not flag_file.with_suffix(".safetensors").exists()  # named files are never rewritten


def test_safetensors_is_preferred_beside_a_pth_and_official_name_first(tmp_path, isolated_weights):
    folder = tmp_path / "folder"
    _place(folder, "aaa-other.safetensors")
    _place(folder, NAME + ".pth")
    best = _place(folder, NAME + ".safetensors")
    assert resolve_checkpoint(folder, allow_download=False) == best


def test_a_pth_found_in_the_cache_is_converted_once(isolated_weights):
    pth = _place(isolated_weights, NAME + ".pth")
    first = resolve_checkpoint(allow_download=False)
    assert first == pth.with_suffix(".safetensors")
    stamp = first.stat().st_mtime_ns
    assert resolve_checkpoint(allow_download=False) == first
    assert first.stat().st_mtime_ns == stamp


def test_explicit_paths_that_do_not_exist_are_errors(tmp_path, monkeypatch, isolated_weights):
    _place(isolated_weights, NAME + ".safetensors")  # must not be used silently instead
    with pytest.raises(WeightsPathError, match="--weights points to .* which does not exist"):
        resolve_checkpoint(tmp_path / "typo.pth")
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsPathError, match="COLORIZE_WEIGHTS points to .* holds no"):
        resolve_checkpoint()


@pytest.mark.parametrize("variable", ["COLORIZE_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_mode_explains_how_to_place_the_file(
    monkeypatch, checkpoint_server, isolated_weights, variable
):
    url = checkpoint_server.url(f"/v0.1/{NAME}.pth")
    monkeypatch.setenv("COLORIZE_WEIGHTS_SOURCES", url)
    monkeypatch.setenv(variable, "1")

    with pytest.raises(WeightsNotFoundError) as caught:
        resolve_checkpoint()

    message = str(caught.value)
    target = isolated_weights / f"{NAME}.pth"
    assert f"disabled by {variable}=1" in message
    assert f"curl -L --create-dirs -o {target} {url}" in message
    assert "--weights PATH" in message and "\n" not in message
    assert checkpoint_server.requests == []
    assert not isolated_weights.exists()


def test_first_run_downloads_converts_and_announces_the_licence(
    tmp_path, monkeypatch, caplog, checkpoint_server, isolated_weights
):
    payload = small_checkpoint_bytes(tmp_path)
    checkpoint_server.files[f"/mirror/{NAME}.pth"] = payload
    monkeypatch.setenv(
        "COLORIZE_WEIGHTS_SOURCES",
        checkpoint_server.url("/missing/x.pth")
        + ", "
        + checkpoint_server.url(f"/mirror/{NAME}.pth"),
    )

    with caplog.at_level(logging.WARNING, logger="colorize.weights.resolve"):
        path = resolve_checkpoint(progress=False)

    assert path == isolated_weights / f"{NAME}.safetensors"
    loaded = load_checkpoint(path)
    assert all(torch.equal(loaded[k], v) for k, v in small_state_dict().items())
    notices = [r.getMessage() for r in caplog.records if r.name == "colorize.weights.resolve"]
    assert len(notices) == 1
    assert str(path) in notices[0] and "CC BY-NC-SA 4.0" in notices[0]
    assert "non-commercial" in notices[0]

    served = len(checkpoint_server.requests)
    assert resolve_checkpoint(progress=False) == path
    assert len(checkpoint_server.requests) == served  # found, not downloaded again


def test_refusing_downloads_points_to_the_download_command(isolated_weights):
    with pytest.raises(WeightsNotFoundError, match="downloading was not allowed"):
        resolve_checkpoint(allow_download=False)


def test_a_downloaded_file_that_changed_afterwards_is_refused(
    tmp_path, monkeypatch, checkpoint_server, isolated_weights
):
    payload = _place(tmp_path / "served", NAME + ".safetensors").read_bytes()
    checkpoint_server.files[f"/{NAME}.safetensors"] = payload
    monkeypatch.setenv("COLORIZE_WEIGHTS_SOURCES", checkpoint_server.url(f"/{NAME}.safetensors"))
    # A .safetensors source is used as downloaded (no conversion), so the record covers it.
    path = resolve_checkpoint(progress=False)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatchError, match="changed since it was downloaded"):
        resolve_checkpoint(progress=False)
