"""Facts about the official ColorMNet checkpoint and the environment variables that steer it.

The checkpoint is published by the ColorMNet authors under CC BY-NC-SA 4.0; we never ship it,
users download it. No checksum is published upstream, so :data:`PINNED_SHA256` starts empty:
until it is filled in, the first complete download records its sha256 in a manifest beside the
file and later downloads are checked against that record (see ``docs/weights.md``).
"""

from __future__ import annotations

import os

CHECKPOINT_FILENAME = "DINOv2FeatureV6_LocalAtten_s2_154000.pth"
CHECKPOINT_STEM = CHECKPOINT_FILENAME.rsplit(".", 1)[0]
SAFETENSORS_FILENAME = CHECKPOINT_STEM + ".safetensors"

# Tried in order; the second is a mirror of the same file.
OFFICIAL_SOURCES: tuple[str, ...] = (
    "https://github.com/yyang181/colormnet/releases/download/v0.1/" + CHECKPOINT_FILENAME,
    "https://github.com/dan64/cmnet2/releases/download/v1.0.0/" + CHECKPOINT_FILENAME,
)

# sha256 of the official file, keyed by file name. Fill in once a trusted download has been
# hashed (``colorize weights list`` prints it); None means "trust on first download".
PINNED_SHA256: dict[str, str | None] = {
    CHECKPOINT_FILENAME: None,
}

LICENCE_NOTICE = "licence CC BY-NC-SA 4.0: non-commercial use only"

# Environment variables (documented in docs/weights.md).
ENV_WEIGHTS = "COLORIZE_WEIGHTS"  # a checkpoint file, or a folder holding one
ENV_CACHE_DIR = "COLORIZE_CACHE_DIR"  # overrides the platform cache folder
ENV_OFFLINE = "COLORIZE_OFFLINE"  # 1 forbids downloads
ENV_HF_OFFLINE = "HF_HUB_OFFLINE"  # Hugging Face's own switch, honoured too
ENV_SOURCES = "COLORIZE_WEIGHTS_SOURCES"  # URLs split by spaces or commas; replaces the defaults

_TRUE_WORDS = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    """True when the environment variable is set to a yes-like word."""
    return os.environ.get(name, "").strip().lower() in _TRUE_WORDS


def offline_reason() -> str | None:
    """The variable that forbids downloads (``"COLORIZE_OFFLINE=1"``), or None when online."""
    for name in (ENV_OFFLINE, ENV_HF_OFFLINE):
        if env_flag(name):
            return f"{name}={os.environ[name].strip()}"
    return None


def configured_sources() -> tuple[str, ...]:
    """Download sources: ``COLORIZE_WEIGHTS_SOURCES`` when set, else the official mirrors."""
    raw = os.environ.get(ENV_SOURCES, "")
    sources = tuple(part for part in raw.replace(",", " ").split() if part)
    return sources or OFFICIAL_SOURCES


def pinned_sha256(filename: str) -> str | None:
    """The sha256 pinned in code for this file name, lower-case, or None."""
    value = PINNED_SHA256.get(filename)
    return value.lower() if value else None
