"""``colorize weights download|convert|list`` through click's test runner."""

from __future__ import annotations

import hashlib

import pytest
import torch
from click.testing import CliRunner

from colorize.errors import ColorizeError
from colorize.weights.cli import weights_group

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


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_download_fetches_converts_and_prints_the_path(
    tmp_path, runner, checkpoint_server, isolated_weights
):
    checkpoint_server.files[f"/{NAME}.pth"] = small_checkpoint_bytes(tmp_path)
    folder = tmp_path / "weights"
    result = runner.invoke(
        weights_group,
        ["download", "--source", checkpoint_server.url(f"/{NAME}.pth"), "--dir", str(folder)],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(folder / f"{NAME}.safetensors")
    assert "100%" in result.stderr and "non-commercial" in result.stderr
    assert (folder / f"{NAME}.pth").is_file() and (folder / f"{NAME}.safetensors").is_file()


def test_download_is_refused_offline(tmp_path, monkeypatch, runner, isolated_weights):
    monkeypatch.setenv("COLORIZE_OFFLINE", "1")
    result = runner.invoke(weights_group, ["download", "--dir", str(tmp_path / "w")])
    assert result.exit_code == 21
    assert result.stderr.strip() == (
        "Error: downloads are disabled by COLORIZE_OFFLINE=1; unset it to download"
    )


def test_convert_writes_safetensors_and_refuses_to_overwrite(tmp_path, runner, isolated_weights):
    src = tmp_path / "in.pth"
    torch.save(small_state_dict(), src)
    first = runner.invoke(weights_group, ["convert", str(src)])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"wrote {tmp_path / 'in.safetensors'}"

    again = runner.invoke(weights_group, ["convert", str(src)])
    assert again.exit_code == 25
    assert "exists; pass --force" in again.stderr
    forced = runner.invoke(weights_group, ["convert", str(src), "--force"])
    assert forced.exit_code == 0


def test_convert_of_a_wrong_model_is_one_line_with_its_exit_code(
    tmp_path, runner, isolated_weights
):
    src = tmp_path / "other.pth"
    torch.save({"backbone.fc.weight": torch.zeros(4, 4)}, src)
    result = runner.invoke(weights_group, ["convert", str(src), str(tmp_path / "o.safetensors")])
    assert result.exit_code == 24
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match the ColorMNet architecture" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.safetensors").exists()


def test_list_shows_every_checkpoint_with_size_sha256_match_and_choice(
    tmp_path, monkeypatch, runner, isolated_weights
):
    from safetensors.torch import save_file

    isolated_weights.mkdir()
    good = isolated_weights / f"{NAME}.safetensors"
    save_file(small_state_dict(), str(good))
    other = isolated_weights / "other.pth"
    torch.save({"backbone.fc.weight": torch.zeros(4, 4)}, other)
    broken = isolated_weights / "broken.pth"
    broken.write_bytes(other.read_bytes()[:50])

    result = runner.invoke(weights_group, ["list"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"user cache {isolated_weights}:"
    chosen = [line for line in lines if line.startswith("* /")]
    assert len(chosen) == 1 and str(good) in chosen[0]
    assert hashlib.sha256(good.read_bytes()).hexdigest() in chosen[0]
    assert f"{good.stat().st_size / 1e6:.1f} MB" in chosen[0]
    assert chosen[0].endswith("matches ColorMNet")
    other_line = next(line for line in lines if str(other) in line)
    assert "DOES NOT match ColorMNet" in other_line and "missing" in other_line
    broken_line = next(line for line in lines if str(broken) in line)
    assert "NOT READABLE" in broken_line
    assert lines[-1] == "* = the checkpoint colorize would use"
    # sha256 values are cached beside the files for the next listing.
    assert (isolated_weights / "colorize-weights.json").is_file()


def test_list_with_nothing_found_says_how_to_get_one(
    tmp_path, monkeypatch, runner, isolated_weights
):
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(tmp_path / "nowhere.safetensors"))
    result = runner.invoke(weights_group, ["list"])
    assert result.exit_code == 0
    assert "does not exist" in result.stdout
    assert "*" not in result.stdout
    last = result.stdout.splitlines()[-1]
    assert last.startswith("no checkpoint found; `colorize weights download`")


def test_list_does_not_write_into_folders_the_user_pointed_at(
    tmp_path, monkeypatch, runner, isolated_weights
):
    own = tmp_path / "own"
    own.mkdir()
    mine = own / "mine.pth"
    torch.save(small_state_dict(), mine)
    monkeypatch.setenv("COLORIZE_WEIGHTS", str(mine))
    result = runner.invoke(weights_group, ["list"])
    assert result.exit_code == 0, result.output
    assert f"* {mine}" in result.stdout and "matches ColorMNet" in result.stdout
    assert sorted(p.name for p in own.iterdir()) == ["mine.pth"]


def test_a_truncated_download_leaves_nothing_that_list_or_colorize_would_use(
    tmp_path, monkeypatch, runner, checkpoint_server, isolated_weights
):
    from colorize.weights import WeightsNotFoundError, resolve_checkpoint

    whole = small_checkpoint_bytes(tmp_path)
    checkpoint_server.files[f"/{NAME}.pth"] = whole[: len(whole) // 3]  # matching Content-Length
    url = checkpoint_server.url(f"/{NAME}.pth")

    result = runner.invoke(weights_group, ["download", "--source", url, "-q"])

    assert result.exit_code == 23
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a usable checkpoint" in lines[0] and "deleted" in lines[0]
    listing = runner.invoke(weights_group, ["list"])
    assert listing.stdout.splitlines()[-1].startswith("no checkpoint found")
    with pytest.raises(WeightsNotFoundError):
        resolve_checkpoint(allow_download=False)
    # The first-run path (what `colorize` does) refuses the same file the same way.
    monkeypatch.setenv("COLORIZE_WEIGHTS_SOURCES", url)
    with pytest.raises(ColorizeError) as caught:
        resolve_checkpoint(progress=False)
    assert caught.value.exit_code == 23
    assert sorted(p.name for p in isolated_weights.iterdir()) in ([], ["colorize-weights.json"])
