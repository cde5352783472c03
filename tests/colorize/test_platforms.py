"""Windows and macOS branches, run here by patching the deciding value or calling the pure
function that decides (the GitHub workflow runs the whole suite on those systems too)."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path

import pytest

from colorize import devices, files
from colorize.comfyui.installer import command_text
from colorize.errors import OutputWriteError
from colorize.footage.knobs import reference_files
from colorize.footage.references import parse_ref_option


# -- glibc tuning ---------------------------------------------------------------------------

@pytest.mark.parametrize("platform", ["win32", "darwin", "cygwin"])
def test_malloc_tuning_is_skipped_off_linux_without_touching_ctypes(monkeypatch, platform):
    def refuse(name, *args, **kwargs):     # what CPython's CDLL(None) does on Windows
        raise TypeError("argument of type 'NoneType' is not iterable")

    monkeypatch.delenv("COLORIZE_MALLOC_TUNING", raising=False)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert devices.is_glibc() is False
    assert devices.keep_freed_host_memory() is False


def test_a_c_library_that_cannot_be_opened_is_not_a_crash(monkeypatch):
    def refuse(name, *args, **kwargs):
        raise TypeError("argument of type 'NoneType' is not iterable")

    monkeypatch.delenv("COLORIZE_MALLOC_TUNING", raising=False)
    monkeypatch.setattr(devices, "is_glibc", lambda platform=None: True)
    monkeypatch.setattr(ctypes, "CDLL", refuse)
    assert devices.keep_freed_host_memory() is False


def test_cpu_threads_without_sched_getaffinity(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: the core count decides."""
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    before = torch.get_num_threads()
    try:
        assert devices.configure_cpu_threads() >= 1
    finally:
        torch.set_num_threads(before)


# -- renaming over a file that is open elsewhere ----------------------------------------------

def _refusing_replace(monkeypatch, refusals: int) -> list[int]:
    real_replace = os.replace
    calls: list[int] = []

    def replace(source, target):
        calls.append(1)
        if len(calls) <= refusals:
            raise PermissionError(errno.EACCES, "The process cannot access the file", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(files, "REPLACE_PAUSE_S", 0.0)
    return calls


def _new_and_old(folder: Path) -> tuple[Path, Path]:
    source, target = folder / "new.mp4", folder / "out.mp4"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    return source, target


def test_windows_replace_waits_for_a_scanner_to_let_go(tmp_path, monkeypatch):
    source, target = _new_and_old(tmp_path)
    monkeypatch.setattr(files, "WINDOWS", True)
    calls = _refusing_replace(monkeypatch, refusals=3)
    files.replace_file(source, target)
    assert len(calls) == 4 and target.read_bytes() == b"new" and not source.exists()


def test_windows_replace_of_a_file_kept_open_says_what_to_do(tmp_path, monkeypatch):
    source, target = _new_and_old(tmp_path)
    monkeypatch.setattr(files, "WINDOWS", True)
    calls = _refusing_replace(monkeypatch, refusals=1000)
    with pytest.raises(OutputWriteError, match="another program has it open.*close it"):
        files.replace_file(source, target)
    assert len(calls) == files.REPLACE_ATTEMPTS and target.read_bytes() == b"old"


def test_posix_permission_error_is_not_retried(tmp_path, monkeypatch):
    source = tmp_path / "new.mp4"
    source.write_bytes(b"new")
    monkeypatch.setattr(files, "WINDOWS", False)
    calls = _refusing_replace(monkeypatch, refusals=1000)
    with pytest.raises(PermissionError):
        files.replace_file(source, tmp_path / "out.mp4")
    assert len(calls) == 1


# -- fsync of files and folders ---------------------------------------------------------------

def test_windows_never_opens_a_folder_to_sync_it(tmp_path, monkeypatch):
    def no_folders(path, flags, *args):   # os.open on a folder: PermissionError on Windows
        raise AssertionError("os.open called on a folder")

    monkeypatch.setattr(files, "WINDOWS", True)
    monkeypatch.setattr(os, "open", no_folders)
    assert files.can_sync_folders() is False
    files.sync_directory(tmp_path)


@pytest.mark.skipif(os.name == "nt", reason="POSIX branch: folders are opened and fsynced")
def test_posix_syncs_folders(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    files.sync_directory(tmp_path)
    assert synced


@pytest.mark.skipif(os.name == "nt", reason="reads the access mode with fcntl")
def test_file_sync_uses_a_handle_windows_can_commit(tmp_path, monkeypatch):
    """Windows' _commit fails with EBADF on a read-only handle; ours must be writable."""
    import fcntl

    real_fsync = os.fsync

    def windows_like_fsync(fd: int) -> None:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, "Bad file descriptor")
        real_fsync(fd)

    part = tmp_path / "part-000.mkv"
    part.write_bytes(b"segment")
    monkeypatch.setattr(os, "fsync", windows_like_fsync)
    files.sync_file(part)
    assert part.read_bytes() == b"segment"


# -- FRAME=PATH with drive letters -----------------------------------------------------------

@pytest.mark.parametrize("text, frame, path", [
    (r"C:\refs\a.png", None, r"C:\refs\a.png"),
    (r"120=C:\x.png", 120, r"C:\x.png"),
    ("0=D:/films/ref.png", 0, "D:/films/ref.png"),
    (r"\\server\share\ref.png", None, r"\\server\share\ref.png"),
    ("./12=x.png", None, "12=x.png"),
])
def test_reference_option_with_windows_paths(text, frame, path):
    spec = parse_ref_option(text)
    assert spec.frame == frame and str(spec.path) == str(Path(path))


def test_run_fingerprint_labels_use_the_same_parsing():
    assert reference_files([r"C:\refs\main.png", r"120=C:\x.png"]) == {
        "main": Path(r"C:\refs\main.png"), "frame 120": Path(r"C:\x.png")}


# -- commands the ComfyUI installer prints ---------------------------------------------------

def test_fix_command_is_quoted_for_cmd_on_windows():
    words = [r"C:\Program Files\Python311\python.exe", "-m", "pip", "install", "-e",
             r"C:\src\colorize video"]
    assert command_text(words, windows=True) == (
        r'"C:\Program Files\Python311\python.exe" -m pip install -e "C:\src\colorize video"')


def test_fix_command_is_quoted_for_the_shell_elsewhere():
    words = ["/Applications/ComfyUI.app/Contents/Resources/python", "-m", "pip", "install",
             "-e", "/Users/me/colorize video"]
    assert command_text(words, windows=False) == (
        "/Applications/ComfyUI.app/Contents/Resources/python -m pip install -e "
        "'/Users/me/colorize video'")
