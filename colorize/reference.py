"""Loading the reference (exemplar) image: any Pillow format into RGB at the frame size.

The reference is decoded with the same conversions as image frames (EXIF orientation applied,
16-bit scaled, CMYK/palette converted, transparency composited on white), then resized to the
upright frame size with Pillow's bilinear filter, as the official ColorMNet pipeline does. The
aspect ratio is not preserved: a reference of a different shape is stretched, so that every part
of it stays visible to the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from colorize.errors import ReferenceUnreadableError
from colorize.video import images

logger = logging.getLogger(__name__)

# Aspect-ratio difference (relative) above which the stretch is worth telling the user about.
_ASPECT_NOTICE_TOLERANCE = 0.02


def load_reference(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Read ``path`` and return an (H, W, 3) uint8 RGB array with ``size == (W, H)``.

    Raises :class:`ReferenceUnreadableError` for a missing, unreadable, truncated or
    oversized (decompression bomb) file.
    """
    rgb = read_reference(path)
    return resize_to(rgb, size)


def read_reference(path: Path) -> np.ndarray:
    """Decode ``path`` to (H, W, 3) uint8 RGB at its own size."""
    if not path.exists():
        raise ReferenceUnreadableError(f"reference image not found: {path}")
    if path.is_dir():
        raise ReferenceUnreadableError(f"reference must be an image file, not a folder: {path}")
    try:
        return images.load_image_rgb(path)
    except (images.ImageTooLargeError, Image.DecompressionBombError) as error:
        raise ReferenceUnreadableError(
            f"reference image {path} rejected: {error}; use a smaller image"
        ) from None
    except PermissionError:
        raise ReferenceUnreadableError(f"reference image is not readable: {path}") from None
    except (OSError, ValueError, SyntaxError) as error:
        # Pillow raises OSError (UnidentifiedImageError, "image file is truncated"), and
        # ValueError/SyntaxError from some plugin parsers on malformed headers.
        raise ReferenceUnreadableError(
            f"cannot read reference image {path}: {error}"
        ) from None


def resize_to(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB array to ``size`` (width, height), bilinear; a no-op when equal."""
    height, width = rgb.shape[:2]
    target_width, target_height = size
    if (width, height) == (target_width, target_height):
        return rgb
    source_aspect = width / height
    target_aspect = target_width / target_height
    if abs(source_aspect / target_aspect - 1) > _ASPECT_NOTICE_TOLERANCE:
        logger.info(
            "reference is %dx%d, frames are %dx%d: the reference is stretched to the frame size",
            width,
            height,
            target_width,
            target_height,
        )
    resized = Image.fromarray(rgb).resize((target_width, target_height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)
