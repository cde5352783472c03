"""``colorize comfyui install|uninstall`` on a fake ComfyUI folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from colorize.cli import cli
from colorize.comfyui import installer


def fake_comfyui(root: Path, version: str | None = "0.33.0", v3: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "main.py").write_text("# ComfyUI entry point (fake)\n")
    (root / "folder_paths.py").write_text("")
    (root / "custom_nodes").mkdir()
    if version is not None:
        (root / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    if v3:
        (root / "comfy_api" / "latest").mkdir(parents=True)
        (root / "comfy_api" / "latest" / "__init__.py").write_text("")
    return root


def run(*args: object, code: int = 0):
    result = CliRunner().invoke(cli, ["comfyui", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


EXAMPLES = ["colorize-film", "colorize-frames", "colorize-video", "colorize-video-keyframes"]


def test_install_writes_a_pack_folder_with_a_loader_and_example_workflows(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    result = run("install", root, "--python", sys.executable)
    pack = root / "custom_nodes" / "colorize"
    loader = pack / "__init__.py"
    assert "installed" in result.output and str(pack) in result.output
    assert "4 example workflows in the template browser under 'colorize'" in result.output
    examples = pack / "example_workflows"
    assert sorted(p.stem for p in examples.iterdir()) == EXAMPLES
    for name, source in installer.example_sources().items():
        # UI format (what the template browser opens), the same as comfy-run's registry files.
        assert (examples / f"{name}.json").read_bytes() == source.read_bytes()
        assert "nodes" in json.loads(source.read_text()) and "links" in json.loads(source.read_text())
    text = loader.read_text()
    assert text.startswith(installer.MARKER)
    assert "from colorize.comfyui.nodes import comfy_entrypoint" in text
    assert "def " not in text and "class " not in text      # a loader, not a copy of the nodes
    assert (root / "models" / "colormnet").is_dir()
    compile(text, str(loader), "exec")
    (examples / "colorize-video.json").write_text("{}")     # stale: replaced by the next install
    run("install", root, "--python", sys.executable)       # again: replaces its own folder
    assert (examples / "colorize-video.json").read_bytes() == installer.example_sources()["colorize-video"].read_bytes()
    assert sorted(p.name for p in (root / "custom_nodes").iterdir()) == ["colorize"]   # nothing left over


def test_an_earlier_single_file_install_is_replaced(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    old = root / "custom_nodes" / "colorize_video_nodes.py"
    old.write_text(installer.MARKER + " (an earlier version's loader)\nfrom colorize.comfyui.nodes import comfy_entrypoint\n")
    result = run("install", root, "--python", sys.executable)
    assert "removed the single-file loader of an earlier install" in result.output
    assert not old.exists() and (root / "custom_nodes" / "colorize" / "__init__.py").is_file()


def test_a_foreign_file_with_the_old_loader_name_is_left_alone(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    other = root / "custom_nodes" / "colorize_video_nodes.py"
    other.write_text("print('somebody else')\n")
    run("install", root, "--python", sys.executable)
    run("uninstall", root)
    assert other.read_text() == "print('somebody else')\n"


def test_loader_error_names_the_fix_when_the_package_is_missing(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    run("install", root, "--python", sys.executable)
    loader = root / "custom_nodes" / "colorize" / "__init__.py"
    # A Python without colorize on its path (isolated mode, no site-packages).
    done = subprocess.run([sys.executable, "-I", "-S", str(loader)], capture_output=True, text=True)
    assert done.returncode != 0
    assert "cannot be imported" in done.stderr and "-m pip install" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in Python is a #!/bin/sh script")
def test_python_that_cannot_import_colorize_gets_the_fix_command(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    fake_python.chmod(0o755)
    result = run("install", root, "--python", fake_python, code=42)
    assert f"the Python ComfyUI runs with ({fake_python}) cannot import colorize" in result.output
    assert f"install it there with: {fake_python} -m pip install" in result.output
    assert not (root / "custom_nodes" / "colorize").exists()


def test_missing_python_is_named(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    result = run("install", root, "--python", tmp_path / "no-python", code=42)
    assert "Python not found" in result.output


@pytest.mark.parametrize("version, v3", [("0.3.40", True), ("0.3.60", False), (None, False)])
def test_old_comfyui_is_refused_with_the_needed_version(tmp_path, version, v3):
    root = fake_comfyui(tmp_path / "ComfyUI", version=version, v3=v3)
    result = run("install", root, "--python", sys.executable, code=41)
    assert f"ComfyUI at {root}" in result.output
    assert "is older than 0.3.56, which the nodes need" in result.output
    assert not (root / "custom_nodes" / "colorize").exists()


def test_not_a_comfyui_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "does not look like ComfyUI" in run("install", tmp_path / "empty", code=40).output
    assert "ComfyUI folder not found" in run("install", tmp_path / "nowhere", code=40).output


def test_foreign_pack_folder_is_never_overwritten_or_removed(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    folder = root / "custom_nodes" / "colorize"
    folder.mkdir()
    (folder / "__init__.py").write_text("print('somebody else')\n")
    assert "not written by colorize" in run("install", root, "--python", sys.executable, code=43).output
    assert "not written by colorize" in run("uninstall", root, code=43).output
    assert (folder / "__init__.py").read_text() == "print('somebody else')\n"


def test_uninstall_removes_only_the_pack_folder(tmp_path):
    root = fake_comfyui(tmp_path / "ComfyUI")
    run("install", root, "--python", sys.executable)
    (root / "models" / "colormnet" / "mine.safetensors").write_bytes(b"x")
    assert "removed" in run("uninstall", root).output
    assert not (root / "custom_nodes" / "colorize").exists()
    assert (root / "models" / "colormnet" / "mine.safetensors").exists()
    assert "not installed" in run("uninstall", root, code=40).output


def test_installer_does_not_import_comfyui():
    code = ("import sys, colorize.comfyui.installer, colorize.comfyui.cli, colorize.comfyui.work; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
