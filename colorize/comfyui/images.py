"""ComfyUI IMAGE tensors <-> the engine's RGB arrays, one frame at a time.

A ComfyUI IMAGE is a float tensor ``(B, H, W, C)`` with values in 0..1, usually C = 3. The
engine takes ``(H, W, 3)`` uint8 RGB. Conversion is per frame so that a batch never exists twice
at full size: the input batch is read frame by frame and results go straight into the output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from colorize.comfyui.errors import NodeInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def describe_shape(image: "torch.Tensor") -> str:
    return "x".join(str(int(n)) for n in image.shape)


def check_batch(images: "torch.Tensor", what: str) -> None:
    """A 4-D IMAGE batch with at least one frame of 1, 3 or 4 channels."""
    if images.dim() != 4:
        raise NodeInputError(f"{what} must be an IMAGE batch (B, H, W, C), got shape {describe_shape(images)}")
    if images.shape[0] == 0:
        raise NodeInputError(f"{what} is an empty IMAGE batch (0 frames); connect at least one image")
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise NodeInputError(f"{what} has an empty frame size ({describe_shape(images)})")
    if images.shape[3] not in (1, 3, 4):
        raise NodeInputError(
            f"{what} has {images.shape[3]} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")


def to_rgb(frame: "torch.Tensor") -> np.ndarray:
    """One ``(H, W, C)`` float frame -> ``(H, W, 3)`` uint8 RGB.

    Gray is repeated into three channels; alpha is composited on white, as the ``colorize``
    command does for a transparent reference image.
    """
    import torch

    values = frame.detach().to("cpu", torch.float32).clamp(0, 1)
    channels = values.shape[-1]
    if channels == 1:
        values = values.expand(-1, -1, 3)
    elif channels == 4:
        alpha = values[..., 3:]
        values = values[..., :3] * alpha + (1 - alpha)
    # Same rounding as ComfyUI's own image savers use in reverse (x * 255, clipped).
    return np.ascontiguousarray((values * 255).round().to(torch.uint8).numpy())


def reference_rgb(reference: "torch.Tensor") -> np.ndarray:
    """The reference IMAGE (its first image when a batch is given) as uint8 RGB."""
    check_batch(reference, "the reference")
    return to_rgb(reference[0])


def write_rgb(rgb: np.ndarray, into: "torch.Tensor") -> None:
    """Store one uint8 RGB result into a slot ``(H, W, 3)`` of the output batch."""
    import torch

    into.copy_(torch.from_numpy(rgb)).div_(255.0)
