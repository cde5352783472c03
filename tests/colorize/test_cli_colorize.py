"""The ``colorize`` command line: help, option -> EngineConfig mapping, subcommands, import cost."""

from __future__ import annotations

import importlib.machinery
import re
import subprocess
import sys
import types

import click
import pytest
from click.testing import CliRunner

from colorize import cli as cli_module
from colorize import errors
from colorize.cli import cli
from colorize.engine import MemorySettings

from video_helpers import gray_frames, invoke, write_video


def test_help_documents_every_option():
    result = invoke(["--help"])
    run_command = cli.get_command(click.Context(cli), "run")
    assert run_command is not None
    for param in run_command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{param.opts} has no help text"
            for name in param.opts:
                assert name in result.stdout, name
    assert result.stdout.startswith("Usage: colorize [OPTIONS] INPUT")
    assert "COLORIZE_WEIGHTS" in result.stdout


def test_help_lists_every_exit_code():
    text = invoke(["--help"]).stdout
    error_classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ColorizeError)
    ]
    for error_class in error_classes:
        pattern = rf"^\s+{error_class.exit_code}\s+\w"
        assert re.search(pattern, text, re.MULTILINE), error_class.__name__
    assert "130" in text


def test_exit_codes_are_distinct():
    codes = [
        value.exit_code
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ColorizeError)
    ]
    assert len(codes) == len(set(codes))


def test_missing_reference_option_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, [str(tmp_path / "in.mp4")])
    assert result.exit_code == 2
    assert "--ref" in result.stderr


def test_quiet_and_verbose_exclude_each_other(tmp_path, red_reference):
    result = CliRunner().invoke(cli, ["in.mp4", "--ref", str(red_reference), "-q", "-v"])
    assert result.exit_code == 2


def test_min_mid_term_must_be_below_max(tmp_path, red_reference):
    result = CliRunner().invoke(
        cli, ["in.mp4", "--ref", str(red_reference), "--max-mid-term-frames", "4",
              "--min-mid-term-frames", "4"],
    )
    assert result.exit_code == 2
    assert "--min-mid-term-frames" in result.stderr


def test_options_reach_the_engine_config(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    invoke([
        source, "--ref", red_reference, "-o", tmp_path / "out.mp4",
        "--device", "cpu", "--fp16", "--ref-is-first-frame",
        "--memory-mode", "low", "--top-k", "12", "--no-long-term",
        "--deep-update-every", "3",
    ])
    (config,) = fake_colorizer.configs
    assert config.device == "cpu"
    assert config.precision == "fp16"
    assert config.reference_is_first_frame is True
    assert config.memory == MemorySettings(
        mem_every=5, top_k=12, max_mid_term_frames=5, min_mid_term_frames=2,
        num_prototypes=64, max_long_term_elements=5000, deep_update_every=3,
        enable_long_term=False,
    )
    assert str(config.weights).endswith("fake-weights.safetensors")


def test_defaults_are_the_official_settings(tmp_path, fake_colorizer, red_reference):
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    explicit_weights = tmp_path / "other.pt"
    explicit_weights.write_bytes(b"w")
    invoke([source, "--ref", red_reference, "-o", tmp_path / "out.mp4", "--weights",
            explicit_weights])
    (config,) = fake_colorizer.configs
    assert config.memory == MemorySettings()
    assert config.precision == "auto"
    assert config.device == "auto"
    assert config.reference_is_first_frame is False
    assert config.weights == explicit_weights  # the flag wins over COLORIZE_WEIGHTS


@pytest.mark.parametrize("mode, expected_max_mid", [("low", 5), ("balanced", 10), ("high", 20)])
def test_memory_presets(mode, expected_max_mid):
    options = {name: None for name in (
        "mem_every", "top_k", "max_mid_term_frames", "min_mid_term_frames", "num_prototypes",
        "max_long_term_elements", "deep_update_every")}
    settings = cli_module._memory_settings({**options, "memory_mode": mode, "no_long_term": False})
    assert settings.max_mid_term_frames == expected_max_mid
    assert settings.min_mid_term_frames < settings.max_mid_term_frames


def test_weights_found_by_the_weights_module_when_not_given(tmp_path, monkeypatch):
    found = tmp_path / "found.safetensors"
    fake_weights = types.ModuleType("colorize.weights")
    calls = []

    def resolve_checkpoint(explicit=None, *, progress=True):
        calls.append((explicit, progress))
        return found

    fake_weights.resolve_checkpoint = resolve_checkpoint
    monkeypatch.setitem(sys.modules, "colorize.weights", fake_weights)
    assert cli_module._resolve_weights(None) == found
    assert cli_module._resolve_weights(None, quiet=True) == found
    assert calls == [(None, True), (None, False)]


def test_weights_module_errors_pass_through(monkeypatch):
    class NoWeights(errors.ColorizeError):
        exit_code = 21

    fake_weights = types.ModuleType("colorize.weights")

    def resolve_checkpoint(explicit=None, *, progress=True):
        raise NoWeights("no checkpoint installed; run 'colorize weights download'")

    fake_weights.resolve_checkpoint = resolve_checkpoint
    monkeypatch.setitem(sys.modules, "colorize.weights", fake_weights)
    with pytest.raises(NoWeights):
        cli_module._resolve_weights(None)


def test_subcommands_are_loaded_lazily(monkeypatch):
    @click.group()
    def fake_group() -> None:
        """Fake subcommands."""

    @fake_group.command()
    def hello() -> None:
        click.echo("hello from the fake subcommand")

    module = types.ModuleType("fake_colorize_extra")
    module.fake_group = fake_group
    module.__spec__ = importlib.machinery.ModuleSpec("fake_colorize_extra", None)
    monkeypatch.setitem(sys.modules, "fake_colorize_extra", module)
    monkeypatch.setitem(cli_module.LAZY_COMMANDS, "extra", ("fake_colorize_extra", "fake_group"))
    monkeypatch.setitem(cli_module.LAZY_COMMANDS, "absent", ("no_such_module_here", "x"))
    monkeypatch.setattr(cli, "commands", dict(cli.commands))

    result = invoke(["extra", "hello"])
    assert result.stdout.strip() == "hello from the fake subcommand"
    assert "absent" not in cli.list_commands(click.Context(cli))
    # A name that is not a subcommand is an input path for the default command.
    result = CliRunner().invoke(cli, ["absent", "--ref", "r.png"])
    assert result.exit_code == 10
    assert "input not found" in result.stderr


def test_version():
    assert invoke(["--version"]).stdout.startswith("colorize, version")


def test_importing_the_cli_does_not_load_torch_or_av():
    code = (
        "import sys, colorize.cli; "
        "heavy = [m for m in ('torch', 'av', 'PIL', 'numpy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_module_entry_point_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "colorize", "--help"], capture_output=True, text=True, check=True
    )
    assert "--ref" in done.stdout


def test_running_the_command_leaves_logging_as_it_was(tmp_path, fake_colorizer, red_reference):
    import logging

    package = logging.getLogger("colorize")
    before = (package.level, package.propagate, list(package.handlers))
    source = write_video(tmp_path / "clip.mp4", gray_frames(2))
    invoke([source, "--ref", red_reference, "-o", tmp_path / "out.mp4", "--verbose"])
    assert (package.level, package.propagate, list(package.handlers)) == before
