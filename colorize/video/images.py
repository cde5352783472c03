"""Still images: turning any Pillow-readable file into (H, W, 3) uint8 RGB, listing frame folders.

Used for image-folder and single-image input and for the reference image. Conversions are
lossless where the source is 8-bit: a grayscale PNG becomes RGB by repeating the gray value,
exactly as Pillow's ``convert("RGB")`` does, because golden tests compare pixels exactly.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Extensions treated as frames when the input is a folder (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".tga", ".ppm", ".pgm"}
)

#: Refuse images above this many pixels before decoding them. Pillow's own default limit
#: (89.5 Mpx) only warns between 1x and 2x; we refuse at 1x so a hostile file cannot make us
#: allocate hundreds of MB.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

# Background used when an image has transparency: white, so transparent areas read as
# "no colour" instead of black shadows.
_ALPHA_BACKGROUND = (255, 255, 255)


class ImageTooLargeError(ValueError):
    """The image header announces more pixels than :data:`MAX_IMAGE_PIXELS`."""


def natural_sort_key(name: str) -> list[object]:
    """Sort key that orders ``frame2`` before ``frame10`` (numbers compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (hidden files skipped), in natural order."""
    files = [
        entry
        for entry in folder.iterdir()
        if entry.is_file()
        and not entry.name.startswith(".")
        and entry.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def read_image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only.

    Raises ``OSError`` (including ``PIL.UnidentifiedImageError``) when the file is not an image
    and :class:`ImageTooLargeError` when it is over the pixel limit.
    """
    with _open_quietly(path) as image:
        _check_pixel_count(image)
        width, height = image.size
        if _exif_swaps_axes(image):
            width, height = height, width
    return width, height


def load_image_rgb(path: Path) -> np.ndarray:
    """Decode ``path`` into an (H, W, 3) uint8 RGB array, upright per its EXIF orientation.

    Handles gray, gray+alpha, palette (with transparency), RGBA, 16-bit and 32-bit gray,
    float, CMYK and YCbCr. Raises ``OSError`` for unreadable or truncated files and
    :class:`ImageTooLargeError` for decompression bombs.
    """
    # open() and load() share one try at the caller: a truncated PNG opens and only fails in load.
    with _open_quietly(path) as image:
        _check_pixel_count(image)
        image.load()
        upright = ImageOps.exif_transpose(image)
        return pil_to_rgb_array(upright)


def pil_to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any mode into (H, W, 3) uint8 RGB."""
    mode = image.mode
    if mode in ("RGB", "L"):
        # The common, lossless paths; L -> RGB repeats the gray value.
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_gray_to_rgb(image)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _ALPHA_BACKGROUND + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), np.uint8)
    # P, 1, CMYK, YCbCr, LAB, HSV: Pillow's own conversion is correct for these.
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _high_depth_gray_to_rgb(image: Image.Image) -> np.ndarray:
    """16/32-bit or float gray to 8-bit RGB.

    ``convert("RGB")`` clips these to white instead of scaling, so scale by hand: 16-bit
    values map by their high byte; 32-bit ``I`` images (how some 16-bit PNGs open) are
    treated as 16-bit when they exceed 255; floats are taken as 0..1 when they stay in it.
    """
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        gray = (values.astype(np.uint32) >> 8).astype(np.uint8)
    elif image.mode == "I":
        wide = values.astype(np.int64)
        if wide.max(initial=0) > 255:
            wide = wide >> 8
        gray = np.clip(wide, 0, 255).astype(np.uint8)
    else:  # "F"
        floats = values.astype(np.float64)
        if floats.size and floats.min() >= 0.0 and floats.max() <= 1.0:
            floats = floats * 255.0
        gray = np.clip(np.rint(floats), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _open_quietly(path: Path) -> Image.Image:
    """``Image.open`` without Pillow's bomb warning: :func:`_check_pixel_count` refuses instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _check_pixel_count(image: Image.Image) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"image is {width}x{height} ({width * height / 1e6:.0f} Mpx), over the "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} Mpx limit"
        )


def _exif_swaps_axes(image: Image.Image) -> bool:
    # EXIF orientations 5-8 include a 90-degree turn, so width and height swap once upright.
    orientation = image.getexif().get(0x0112, 1)
    return orientation in (5, 6, 7, 8)


def save_image(rgb: np.ndarray, path: Path, image_format: str = "PNG") -> None:
    """Write an (H, W, 3) uint8 RGB array; PNG is lossless, JPEG is saved at quality 95."""
    options = {"quality": 95} if image_format == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        path, format=image_format, **options
    )
