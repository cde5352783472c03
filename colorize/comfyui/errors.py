"""Errors the ComfyUI side raises; their message is what reaches ComfyUI's ``execution_error``.

Everything here derives from :class:`colorize.errors.ColorizeError`, so one line names the problem
and what to do; the node module turns any ``ColorizeError`` into a plain one-line exception.
"""

from __future__ import annotations

from colorize.errors import ColorizeError


class NodeInputError(ColorizeError):
    """A node got an input it cannot use (empty batch, wrong channel count, no frames)."""


class ComfyUIInstallError(ColorizeError):
    """``colorize comfyui install`` cannot do its job; exit codes 40-43."""

    exit_code = 40


class ComfyUITooOldError(ComfyUIInstallError):
    exit_code = 41


class PackageNotImportableError(ComfyUIInstallError):
    exit_code = 42


class ForeignLoaderError(ComfyUIInstallError):
    exit_code = 43
