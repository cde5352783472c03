"""Precision and device set-up of the network: which precision ``auto`` means, the one-time
weight cast, TF32 off for fp32 on CUDA, and the autocast context of a run."""

from __future__ import annotations

import contextlib

from colorize.errors import DeviceUnavailableError


def resolve_precision(requested: str, device) -> str:
    if requested == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if requested == "fp16" and device.type == "cpu":
        raise DeviceUnavailableError("--fp16 needs a GPU; on CPU use --fp32 (default) or --bf16")
    return requested


def prepare_network(network, device, precision: str):
    """Move ``network`` to ``device`` in ``precision``; returns the network to use."""
    import torch

    network = network.to(device)
    if precision in ("fp16", "bf16"):
        # Half weights once, instead of autocast casting every weight on every call (that cast
        # was 18% of a bf16 frame on CPU). The short-term attention computes in float32.
        network = network.to(torch.float16 if precision == "fp16" else torch.bfloat16)
        network.short_term_attn.float()
    if device.type == "cuda" and precision == "fp32":
        # The goldens are plain fp32: TF32 convolutions would move the numbers.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return network


def autocast(device, precision: str):
    """The context a run computes in: nothing for fp32, autocast to the half type otherwise."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
