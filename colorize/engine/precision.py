"""Precision and device set-up of the network: which precision ``auto`` means (and why), the
one-time weight cast, TF32 off for fp32 on CUDA, and the autocast context of a run.

``auto`` is fp16 on CUDA, bf16 on a CPU with native bfloat16 arithmetic (AMX-BF16 or
AVX512-BF16: 1.5-2x faster than fp32 there), fp32 on every other device. ``--fp32`` always
gives the official numbers. fp16 on CPU runs, for checking the GPU default's numerics without a
GPU (see :func:`half_products_in_float32`), with a note that it is meant for that.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CPU_FP16_NOTE = ("fp16 on CPU is slow (slower than bf16 here) and meant for checking the GPU "
                 "default's numerics; use --bf16 or --fp32 for real work")


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run computes in, and the words ``--plan`` gives for it."""

    precision: str
    reason: str


def choose_precision(requested: str, device) -> PrecisionChoice:
    """What ``requested`` (auto, fp32, fp16, bf16) means on ``device``."""
    if requested != "auto":
        return PrecisionChoice(requested, f"--{requested}")
    if device.type == "cuda":
        return PrecisionChoice("fp16", "auto: fp16 on CUDA; --fp32 for the official numbers")
    if device.type == "cpu":
        from colorize.devices import cpu_native_bf16

        feature = cpu_native_bf16()
        if feature is not None:
            return PrecisionChoice(
                "bf16", f"auto: this CPU has {feature}; --fp32 for the official numbers")
        return PrecisionChoice("fp32", "auto: this CPU has no native bfloat16 (AMX or AVX512-BF16)")
    return PrecisionChoice("fp32", f"auto: fp32 on {device.type}")


def resolve_precision(requested: str, device) -> str:
    return choose_precision(requested, device).precision


def prepare_network(network, device, precision: str):
    """Move ``network`` to ``device`` in ``precision``; returns the network to use."""
    import torch

    network = network.to(device)
    if precision in ("fp16", "bf16"):
        # Half weights once, instead of autocast casting every weight on every call (that cast
        # was 18% of a bf16 frame on CPU). The short-term attention computes in float32, so
        # its weights are never cast (a cast to half and back would round them).
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        for name, child in network.named_children():
            if name != "short_term_attn":
                child.to(dtype)
    if device.type == "cpu" and precision == "fp16":
        logger.warning("%s", CPU_FP16_NOTE)
    if device.type == "cuda" and precision == "fp32":
        # The goldens are plain fp32: TF32 convolutions would move the numbers.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return network


def autocast(device, precision: str):
    """The context a run computes in: nothing for fp32, autocast to the half type otherwise
    (on CPU, fp16 also gets :func:`half_products_in_float32`)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    context = torch.autocast(device_type=device.type, dtype=dtype)
    if device.type == "cpu" and precision == "fp16":
        stack = contextlib.ExitStack()
        stack.enter_context(context)
        stack.enter_context(half_products_in_float32())
        return stack
    return context


def half_products_in_float32():
    """fp16 convolutions and matrix products on CPU done as a GPU does them.

    CPUs without AVX512-FP16 have no fp16 convolution kernel: PyTorch falls back to a reference
    loop 25 times slower than fp32 (35 s for one 224x224 key encoding). Inside this context
    those products take their operands rounded to fp16, accumulate in float32 and round the
    result to fp16, which is what CUDA's fp16 kernels do, so a CPU run shows the GPU default's
    range and rounding at about fp32 speed. Every other operation runs in fp16 as it is.
    """
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_map

    import torch.nn.functional as F

    products = {torch.conv1d, torch.conv2d, torch.conv_transpose2d, F.linear, torch.matmul,
                torch.mm, torch.bmm, torch.addmm, torch.baddbmm, torch.einsum,
                F.scaled_dot_product_attention, torch.Tensor.matmul, torch.Tensor.__matmul__,
                torch.Tensor.bmm, torch.Tensor.mm}

    def half_autocast() -> bool:
        return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16

    def rounded(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point() \
                and value.dtype != torch.float64:
            return value.to(torch.float16).to(torch.float32)
        return value

    class HalfProductsInFloat32(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in products:
                tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
                if half_autocast() or any(t.dtype == torch.float16 for t in tensors):
                    with torch.autocast("cpu", enabled=False):
                        out = func(*tree_map(rounded, args), **tree_map(rounded, kwargs))
                    return out.to(torch.float16)
            return func(*args, **kwargs)

    return HalfProductsInFloat32()
