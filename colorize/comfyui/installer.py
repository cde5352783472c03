"""``colorize comfyui install|uninstall``: the pack folder ``COMFYUI_DIR/custom_nodes/colorize/``.

The folder holds a loader (``__init__.py``) and ``example_workflows/``. The loader holds no copy
of our code: it imports :mod:`colorize.comfyui.nodes` from the Python ComfyUI runs with, so
upgrading the ``colorize-video`` package upgrades the nodes. ``example_workflows/`` holds the
UI-format workflows that ship with comfy-run's registry; ComfyUI lists a pack folder's
``example_workflows/*.json`` under the folder's name at ``GET /workflow_templates`` (its template
browser) and serves each at ``/api/workflow_templates/colorize/NAME.json``.

Before writing, the installer checks that ComfyUI is new enough for the V3 node API and that its
Python can import this package (and prints the command that fixes it when not). The folder is
built beside its place and renamed into it; the single loader file of earlier versions
(``custom_nodes/colorize_video_nodes.py``) is removed once the folder is in place, so ComfyUI
never loads the nodes twice. Nothing here imports ComfyUI.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import colorize
from colorize import files
from colorize.comfyui.errors import (
    ComfyUIInstallError,
    ComfyUITooOldError,
    ForeignLoaderError,
    PackageNotImportableError,
)

logger = logging.getLogger(__name__)

#: The pack folder in custom_nodes; ComfyUI lists its example workflows under this name. (A
#: folder is imported under its full path, so the name does not shadow the colorize package.)
PACK_NAME = "colorize"
LOADER_NAME = "__init__.py"
#: The single-file loader earlier versions installed; replaced by the folder.
OLD_LOADER_NAME = "colorize_video_nodes.py"
EXAMPLES_FOLDER = "example_workflows"
#: Template name in ComfyUI -> UI-format workflow file of comfy-run's registry.
EXAMPLE_WORKFLOWS = {
    "colorize-video": "colorize_video.ui.json",
    "colorize-frames": "colorize_frames.ui.json",
    "colorize-video-keyframes": "colorize_video_keyframes.ui.json",
    "colorize-film": "colorize_film.ui.json",
}
MARKER = "# colorize-video ComfyUI loader"
#: The oldest ComfyUI whose core video nodes use the V3 node API the nodes are written against
#: (comfy_api.latest with io.ComfyNode, io.Video, ComfyExtension and comfy_entrypoint).
MIN_COMFYUI_VERSION = (0, 3, 56)
MODEL_FOLDER = "colormnet"
CHECK_TIMEOUT_S = 120

LOADER_TEMPLATE = MARKER + """ (written by 'colorize comfyui install'; remove it with
# 'colorize comfyui uninstall COMFYUI_DIR'). It only imports the installed colorize package, so
# upgrading that package upgrades the nodes.
import os
import shlex
import subprocess
import sys

INSTALL_HINT = @HINT@
PYTHON = subprocess.list2cmdline([sys.executable]) if os.name == "nt" else shlex.quote(sys.executable)

try:
    from colorize.comfyui.nodes import comfy_entrypoint  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"colorize nodes: the colorize package cannot be imported by {sys.executable} ({error}); "
        f"install it with: {PYTHON} -m pip install {INSTALL_HINT}"
    ) from error
"""


@dataclass(frozen=True)
class InstallResult:
    loader: Path
    examples: tuple[Path, ...]
    replaced_old_loader: bool
    comfyui_version: str | None
    python: str
    package_version: str
    model_folder: Path


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def read_comfyui_version(comfyui_dir: Path) -> str | None:
    """The version ComfyUI reports (comfyui_version.py, else pyproject.toml), or None."""
    for name, pattern in (("comfyui_version.py", r'__version__\s*=\s*["\']([^"\']+)'),
                          ("pyproject.toml", r'(?m)^version\s*=\s*["\']([^"\']+)')):
        try:
            match = re.search(pattern, (comfyui_dir / name).read_text(encoding="utf-8"))
        except OSError:
            continue
        if match:
            return match.group(1)
    return None


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_comfyui_dir(comfyui_dir: Path) -> str | None:
    """Raise unless ``comfyui_dir`` is a ComfyUI checkout new enough for the nodes."""
    if not comfyui_dir.is_dir():
        raise ComfyUIInstallError(f"ComfyUI folder not found: {comfyui_dir}")
    if not (comfyui_dir / "main.py").is_file() or not (comfyui_dir / "folder_paths.py").is_file():
        raise ComfyUIInstallError(
            f"{comfyui_dir} does not look like ComfyUI (no main.py / folder_paths.py); "
            "give the folder that holds ComfyUI's main.py")
    needed = version_text(MIN_COMFYUI_VERSION)
    version = read_comfyui_version(comfyui_dir)
    has_v3 = (comfyui_dir / "comfy_api" / "latest" / "__init__.py").is_file()
    if (version is not None and parse_version(version) < MIN_COMFYUI_VERSION) or not has_v3:
        found = f"it is {version}" if version else "its version is unknown"
        raise ComfyUITooOldError(
            f"ComfyUI at {comfyui_dir} is older than {needed}, which the nodes need ({found} and the "
            "V3 node API comfy_api.latest is missing or too old); update ComfyUI (git pull) and install again")
    if version is None:
        logger.warning("cannot read ComfyUI's version in %s; it has the V3 node API, going on", comfyui_dir)
    return version


def _install_args() -> list[str]:
    """What to pip-install: the source tree for an editable/source install, else the package."""
    package_dir = Path(colorize.__file__).resolve().parent
    root = package_dir.parent
    if (root / "pyproject.toml").is_file() and "site-packages" not in package_dir.parts:
        return ["-e", str(root)]
    return [f"colorize-video=={colorize.__version__}"]


def command_text(words: Sequence[str], windows: bool | None = None) -> str:
    """``words`` as one command line to paste: cmd.exe quoting on Windows (``"C:\\Program
    Files\\..."``), POSIX shell quoting elsewhere, so paths with spaces survive."""
    windows = files.WINDOWS if windows is None else windows
    return subprocess.list2cmdline(list(words)) if windows else shlex.join(words)


def check_python(python: str) -> str:
    """The colorize version ``python`` imports; raise with the fix command if it cannot."""
    # torch and av are looked up, not imported: importing torch takes seconds.
    code = ("import importlib.util, colorize, colorize.comfyui.work\n"
            "for name in ('torch', 'av'):\n"
            "    if importlib.util.find_spec(name) is None:\n"
            "        raise SystemExit('ModuleNotFoundError: No module named ' + repr(name))\n"
            "print(colorize.__version__)")
    fix = command_text([python, "-m", "pip", "install", *_install_args()])
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_S)
    except FileNotFoundError:
        raise PackageNotImportableError(f"Python not found: {python}; give ComfyUI's Python with --python") from None
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PackageNotImportableError(f"cannot run {python} ({error}); give ComfyUI's Python with --python") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error text"])[-1]
        raise PackageNotImportableError(
            f"the Python ComfyUI runs with ({python}) cannot import colorize ({last}); "
            f"install it there with: {fix}")
    version = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "?"
    if version != colorize.__version__:
        logger.warning("%s imports colorize %s, this command is %s: the nodes run that version "
                       "(upgrade with: %s)", python, version, colorize.__version__, fix)
    return version


def pack_path(comfyui_dir: Path) -> Path:
    return comfyui_dir / "custom_nodes" / PACK_NAME


def loader_path(comfyui_dir: Path) -> Path:
    return pack_path(comfyui_dir) / LOADER_NAME


def old_loader_path(comfyui_dir: Path) -> Path:
    return comfyui_dir / "custom_nodes" / OLD_LOADER_NAME


def _is_ours(path: Path) -> bool:
    """A loader file we wrote, or a pack folder whose loader we wrote."""
    if path.is_dir():
        path = path / LOADER_NAME
    try:
        return path.read_text(encoding="utf-8").startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def example_sources() -> dict[str, Path]:
    """Template name -> the registry's UI-format workflow file it is copied from."""
    from runner.registry import REGISTRY_DIR

    return {name: REGISTRY_DIR / file for name, file in EXAMPLE_WORKFLOWS.items()}


def _build_pack(folder: Path) -> list[Path]:
    """Write the loader and the example workflows into the new folder ``folder``."""
    folder.mkdir()
    (folder / LOADER_NAME).write_text(
        LOADER_TEMPLATE.replace("@HINT@", repr(command_text(_install_args()))), encoding="utf-8")
    examples = folder / EXAMPLES_FOLDER
    examples.mkdir()
    written = []
    for name, source in example_sources().items():
        target = examples / f"{name}.json"
        shutil.copyfile(source, target)
        written.append(target)
    return written


def install(comfyui_dir: Path, python: str = sys.executable) -> InstallResult:
    """Check ComfyUI and its Python, then put the pack folder in place and models/colormnet."""
    comfyui_dir = comfyui_dir.expanduser().resolve()
    version = check_comfyui_dir(comfyui_dir)
    package_version = check_python(python)
    pack = pack_path(comfyui_dir)
    if pack.exists() and not _is_ours(pack):
        raise ForeignLoaderError(f"{pack} exists and was not written by colorize; move it away and install again")
    old_loader = old_loader_path(comfyui_dir)
    old_is_ours = old_loader.is_file() and _is_ours(old_loader)
    if old_loader.exists() and not old_is_ours:
        logger.warning("%s was not written by colorize; leaving it", old_loader)
    # Hidden names, so that a ComfyUI starting meanwhile does not load a half-written pack.
    staging = pack.with_name(f".{PACK_NAME}.installing-{os.getpid()}")
    previous = pack.with_name(f".{PACK_NAME}.replaced-{os.getpid()}")
    try:
        pack.parent.mkdir(parents=True, exist_ok=True)
        models = comfyui_dir / "models" / MODEL_FOLDER
        models.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        examples = _build_pack(staging)
        if pack.exists():
            os.replace(pack, previous)
        os.replace(staging, pack)
        shutil.rmtree(previous, ignore_errors=True)
        if old_is_ours:
            old_loader.unlink()
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if previous.exists() and not pack.exists():
            os.replace(previous, pack)
        raise ComfyUIInstallError(f"cannot write the pack folder {pack}: {error}") from None
    return InstallResult(loader_path(comfyui_dir),
                         tuple(pack / EXAMPLES_FOLDER / e.name for e in examples),
                         old_is_ours, version, python, package_version, models)


def uninstall(comfyui_dir: Path) -> list[Path]:
    """Remove the pack folder (and a single-file loader of an earlier version); models/colormnet
    and its checkpoints stay. Returns what was removed."""
    comfyui_dir = comfyui_dir.expanduser().resolve()
    pack, old_loader = pack_path(comfyui_dir), old_loader_path(comfyui_dir)
    ours = [path for path in (pack, old_loader) if path.exists() and _is_ours(path)]
    foreign = [path for path in (pack, old_loader) if path.exists() and not _is_ours(path)]
    if not ours:
        if foreign:
            raise ForeignLoaderError(f"{foreign[0]} was not written by colorize; not removing it")
        raise ComfyUIInstallError(f"the colorize nodes are not installed in {comfyui_dir} (no {pack})")
    try:
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    except OSError as error:
        raise ComfyUIInstallError(f"cannot remove {path}: {error}") from None
    return ours
