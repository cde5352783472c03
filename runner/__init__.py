"""comfy-run: a race-safe ComfyUI client (Python API and command line)."""

from __future__ import annotations

from runner.errors import ComfyRunError, ExitCode

__all__ = ["ComfyRunError", "ExitCode"]
