"""Colour conversions on tensors, matching the official pipeline's numbers.

The official code converts with scikit-image: ``rgb2lab`` in float64 from uint8 RGB, then the
network's normalisation ``L^ = (L - 50) / 50``, ``a^ = a / 110``, ``b^ = b / 110`` in float32.
Computing the forward conversion in float32 changes L in about half the pixels (FACTS 2.1), so the
forward path runs in float64 and casts, whatever the device (MPS has no float64: it falls back
to the CPU for this step). The inverse runs in float32 like skimage >= 0.19 does.
"""

from __future__ import annotations

import numpy as np
import torch

# sRGB (D65) -> XYZ, and the D65 2-degree reference white, as scikit-image defines them.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_LAB_EPSILON = 0.008856
_LAB_KAPPA_SLOPE = 7.787

L_MEAN, L_STD = 50.0, 50.0
AB_STD = 110.0


def _float64_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if device.type == "mps" else device


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``(..., 3, H, W)`` -> float64 LAB ``(..., 3, H, W)`` (L in [0, 100])."""
    c = rgb.to(_float64_device(rgb.device), torch.float64) / 255.0
    linear = torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    matrix = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64, device=c.device)
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, linear)
    white = torch.tensor(_WHITE_D65, dtype=torch.float64, device=c.device).view(3, 1, 1)
    t = xyz / white
    f = torch.where(t > _LAB_EPSILON, t.pow(1.0 / 3.0), _LAB_KAPPA_SLOPE * t + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-3)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)
    return lab.to(rgb.device) if rgb.device.type == "mps" else lab


def normalize_lab(lab: torch.Tensor) -> torch.Tensor:
    """float LAB -> the network's float32 scale: (L-50)/50, a/110, b/110."""
    lab32 = lab.to(torch.float32)
    mean = torch.tensor((L_MEAN, 0.0, 0.0), dtype=torch.float32, device=lab.device).view(3, 1, 1)
    std = torch.tensor((L_STD, AB_STD, AB_STD), dtype=torch.float32, device=lab.device).view(3, 1, 1)
    return (lab32 - mean) / std


def rgb_to_normalized_lab(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB ``(..., 3, H, W)`` -> normalised float32 LAB, as the network sees it."""
    return normalize_lab(rgb_to_lab(rgb))


def denormalize_lab(lab_hat: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_lab`, dividing by float32 reciprocals as the official code does.

    ``(L^ + 1) / fp32(1/50)`` is not bitwise ``50 * (L^ + 1)``; the official inverse transform is
    a torchvision Normalize with mean (-1, 0, 0) and std (1/50, 1/110, 1/110).
    """
    x = lab_hat.to(torch.float32)
    mean = torch.tensor((-1.0, 0.0, 0.0), dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor((1 / L_STD, 1 / AB_STD, 1 / AB_STD), dtype=torch.float32,
                       device=x.device).view(3, 1, 1)
    return (x - mean) / std


def lab_to_rgb_uint8(lab: torch.Tensor) -> torch.Tensor:
    """float32 LAB ``(..., 3, H, W)`` -> uint8 RGB, truncating like ``astype(uint8)``.

    Follows scikit-image's float32 ``lab2rgb``: negative z clamped to 0, the piecewise cube,
    the inverse sRGB matrix, sRGB gamma, clip to [0, 1], then ``* 255`` and truncation.
    """
    lab = lab.to(torch.float32)
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.stack((fx, fy, fz), dim=-3)
    xyz = torch.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / _LAB_KAPPA_SLOPE)
    white = torch.tensor(_WHITE_D65, dtype=torch.float32, device=lab.device).view(3, 1, 1)
    xyz = xyz * white
    inverse = torch.from_numpy(np.linalg.inv(np.array(_XYZ_FROM_RGB))).to(lab.device, torch.float32)
    linear = torch.einsum("ij,...jhw->...ihw", inverse, xyz)
    srgb = torch.where(linear > 0.0031308,
                       1.055 * linear.clamp_min(0.0) ** (1 / 2.4) - 0.055,
                       12.92 * linear)
    return (srgb.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def assemble_rgb(luminance_hat: torch.Tensor, ab_hat: torch.Tensor) -> torch.Tensor:
    """The output frame from the frame's own normalised L ``(1, H, W)`` and predicted ab ``(2, H, W)``."""
    lab_hat = torch.cat((luminance_hat.to(torch.float32), ab_hat.to(torch.float32)), dim=-3)
    return lab_to_rgb_uint8(denormalize_lab(lab_hat))
