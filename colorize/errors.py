"""Exceptions a user can cause, each with its own exit code and a one-line message.

The CLI catches :class:`ColorizeError` and prints ``str(error)`` without a traceback; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ColorizeError(Exception):
    """Base class of every error caused by input, environment or configuration."""

    exit_code = 1


class ColorizerUnavailableError(ColorizeError):
    """No colorization model could be built (missing weights, missing implementation)."""

    exit_code = 9
