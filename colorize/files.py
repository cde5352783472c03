"""File operations whose behaviour differs between POSIX and Windows, in one place.

- Renaming over a file: POSIX replaces it even while another program has it open; Windows
  refuses with ``PermissionError`` while any handle is open without delete sharing (a media
  player showing the last output, an editor, a virus scanner that is still reading the file).
  Scanners let go within a moment, so the rename is retried briefly; a program that keeps the
  file open gets a one-line error that says what to do.
- Flushing a folder: POSIX opens the folder and fsyncs it so that renames inside it survive a
  power cut; Windows cannot open a folder that way (and commits renames with the file system
  journal), so nothing is done there.
- Flushing a file: Windows' ``_commit`` needs a handle opened for writing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from colorize.errors import OutputWriteError

#: True on Windows; a module attribute so tests can run the Windows branch anywhere.
WINDOWS = os.name == "nt"
REPLACE_ATTEMPTS = 10
REPLACE_PAUSE_S = 0.1


def replace_file(source: Path | str, target: Path | str) -> None:
    """``os.replace(source, target)``, retried for about a second on Windows while ``target``
    is held open elsewhere; then :class:`OutputWriteError` naming the file."""
    for attempt in range(REPLACE_ATTEMPTS):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if not WINDOWS:
                raise       # a real permission problem on POSIX: the caller reports it
            if attempt == REPLACE_ATTEMPTS - 1:
                break
            time.sleep(REPLACE_PAUSE_S)
    raise OutputWriteError(
        f"cannot replace {target}: another program has it open (a player, an editor or a virus "
        "scanner); close it and run again")


def sync_file(path: Path) -> None:
    """fsync ``path``; opened for writing since Windows cannot flush a read-only handle."""
    with open(path, "r+b") as handle:
        os.fsync(handle.fileno())


def can_sync_folders() -> bool:
    """Whether folders can be opened and fsynced here (POSIX yes, Windows no)."""
    return not WINDOWS


def sync_directory(path: Path) -> None:
    """fsync a folder so the renames inside it survive a power cut (POSIX only)."""
    if not can_sync_folders():
        return
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:     # some file systems (network mounts) refuse; the data is written anyway
        pass
    finally:
        os.close(handle)
