"""Errors about the ColorMNet checkpoint, each with its own exit code (20-29).

They live in their own module, the first of the package, so that every other module can raise
them without import cycles; :mod:`colorize.weights` re-exports them and is where callers outside
the package should import them from.

===  ==============================  ==========================================================
code class                            meaning
===  ==============================  ==========================================================
20   WeightsNotFoundError            no checkpoint found and downloading is disabled or refused
21   WeightsDownloadError            every download source failed (network, HTTP, disk space)
22   ChecksumMismatchError           a file's size or sha256 differs from the expected value
23   CheckpointUnreadableError       not a checkpoint, truncated, or holds more than tensors
24   ArchitectureMismatchError       keys or shapes do not match ColorMNet
25   WeightsPathError                a given path is missing, a directory, or not writable
26   WeightsSourceError              a download source is malformed
===  ==============================  ==========================================================
"""

from __future__ import annotations

from colorize.errors import ColorizeError


class WeightsNotFoundError(ColorizeError):
    """No checkpoint in the search path, and downloading is off (offline mode or refused)."""

    exit_code = 20


class WeightsDownloadError(ColorizeError):
    """No source delivered the checkpoint (network error, HTTP error, not enough disk space)."""

    exit_code = 21


class ChecksumMismatchError(ColorizeError):
    """A file's size or sha256 differs from the pinned or recorded value."""

    exit_code = 22


class CheckpointUnreadableError(ColorizeError):
    """The file is not a readable checkpoint: truncated, another format, or pickled objects."""

    exit_code = 23


class ArchitectureMismatchError(ColorizeError):
    """The checkpoint's keys or shapes do not match the ColorMNet architecture."""

    exit_code = 24


class WeightsPathError(ColorizeError):
    """A path given for weights does not exist, is of the wrong kind, or cannot be written."""

    exit_code = 25


class WeightsSourceError(ColorizeError):
    """A download source is neither an http(s) URL nor ``hf://owner/repo/file``."""

    exit_code = 26
