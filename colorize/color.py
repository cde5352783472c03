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
    return (_lab_to_srgb_unclipped(lab).clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def _lab_to_srgb_unclipped(lab: torch.Tensor) -> torch.Tensor:
    """float32 LAB -> float32 sRGB before the clip to [0, 1]: values outside it are out of gamut."""
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
    # The run's autocast is still on while frames are assembled (the engine yields from inside
    # it); under it this matrix product would run in fp16/bf16 and move output levels.
    with torch.autocast(lab.device.type, enabled=False):
        linear = torch.einsum("ij,...jhw->...ihw", inverse, xyz)
    return torch.where(linear > 0.0031308,
                       1.055 * linear.clamp_min(0.0) ** (1 / 2.4) - 0.055,
                       12.92 * linear)


def assemble_rgb(luminance_hat: torch.Tensor, ab_hat: torch.Tensor) -> torch.Tensor:
    """The output frame from the frame's own normalised L ``(1, H, W)`` and predicted ab ``(2, H, W)``."""
    lab_hat = torch.cat((luminance_hat.to(torch.float32), ab_hat.to(torch.float32)), dim=-3)
    return lab_to_rgb_uint8(denormalize_lab(lab_hat))


#: Halvings of the chroma scale in :func:`keep_luminance`; 2**-12 of the chroma is far below a level.
_GAMUT_STEPS = 12
#: How far outside [0, 1] a channel may be before it counts as out of gamut (float32 noise).
_GAMUT_TOLERANCE = 1e-4


def keep_luminance(generated_rgb: np.ndarray, gray_rgb: np.ndarray) -> np.ndarray:
    """The colour (LAB a, b) of ``generated_rgb`` on the luminance (LAB L) of ``gray_rgb``.

    A colour reference made by an image-edit model from a gray keyframe shifts details and
    brightness a little; the memory matches a reference best when its L is the frame's own, so
    only the colour is taken from the generated picture.

    Parameters
    ----------
    generated_rgb:
        uint8 ``(h, w, 3)`` RGB, any size: its colour is resized (bilinear, antialiased) to the
        gray image's size.
    gray_rgb:
        uint8 ``(H, W)`` or ``(H, W, 3)``: the keyframe whose L is kept (a coloured image works
        too; only its L is used).

    Returns
    -------
    uint8 ``(H, W, 3)`` RGB whose L equals ``gray_rgb``'s up to rounding. Where the generated
    colour is out of the sRGB gamut at that L, its chroma is scaled down (hue kept) until it
    fits, instead of clipping the channels, which would change the luminance.
    """
    gray = np.asarray(gray_rgb)
    if gray.ndim == 2:
        gray = np.repeat(gray[:, :, None], 3, axis=2)
    generated = np.asarray(generated_rgb)
    if gray.dtype != np.uint8 or generated.dtype != np.uint8 or gray.shape[2:] != (3,) \
            or generated.ndim != 3 or generated.shape[2] != 3:
        raise ValueError("keep_luminance takes uint8 RGB (H, W, 3) images (the gray one may be (H, W))")
    height, width = gray.shape[:2]
    # Copies: the arrays may be read-only views (of a PIL image), which torch does not take.
    luminance = rgb_to_lab(torch.from_numpy(np.array(gray, order="C")).permute(2, 0, 1))[0:1]
    ab = rgb_to_lab(torch.from_numpy(np.array(generated, order="C")).permute(2, 0, 1))[1:3]
    if ab.shape[-2:] != (height, width):
        ab = torch.nn.functional.interpolate(ab[None], size=(height, width), mode="bilinear",
                                             align_corners=False, antialias=True)[0]
    luminance, ab = luminance.to(torch.float32), ab.to(torch.float32)

    def srgb_at(scale: torch.Tensor) -> torch.Tensor:
        return _lab_to_srgb_unclipped(torch.cat((luminance, ab * scale), dim=0))

    def in_gamut(srgb: torch.Tensor) -> torch.Tensor:
        return ((srgb >= -_GAMUT_TOLERANCE) & (srgb <= 1.0 + _GAMUT_TOLERANCE)).all(dim=0, keepdim=True)

    # Bisect the chroma scale per pixel; scale 0 (neutral gray at that L) is always in gamut.
    low = torch.zeros_like(luminance)
    high = torch.ones_like(luminance)
    fits = in_gamut(srgb_at(high))
    low = torch.where(fits, high, low)
    if not bool(fits.all()):
        for _ in range(_GAMUT_STEPS):
            middle = (low + high) / 2
            ok = in_gamut(srgb_at(middle)) | fits
            low, high = torch.where(ok, middle, low), torch.where(ok, high, middle)
    srgb = srgb_at(low).clamp(0.0, 1.0)
    # Rounded, not truncated: truncation would darken every channel by half a level on average.
    return (srgb * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
