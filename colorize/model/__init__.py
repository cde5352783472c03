"""The ColorMNet network as named stages (no I/O, no memory bookkeeping)."""

from colorize.model.config import ModelConfig
from colorize.model.network import ColorMNet, KeyFeatures

__all__ = ["ColorMNet", "KeyFeatures", "ModelConfig"]
