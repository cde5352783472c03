"""Reference loading: every Pillow mode becomes correct 8-bit RGB at the frame size."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize.errors import ReferenceUnreadableError
from colorize.reference import load_reference, read_reference


def test_gray_repeats_the_value(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (8, 6), 77).save(path)
    rgb = read_reference(path)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    assert (rgb == 77).all()


def test_rgba_is_composited_on_white(tmp_path):
    pixels = np.zeros((2, 2, 4), np.uint8)
    pixels[0, 0] = (200, 10, 10, 255)  # opaque red
    pixels[0, 1] = (0, 0, 255, 0)  # fully transparent blue
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, "RGBA").save(path)
    rgb = read_reference(path)
    assert tuple(rgb[0, 0]) == (200, 10, 10)
    assert tuple(rgb[0, 1]) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 128, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    path = tmp_path / "palette.png"
    image.save(path, transparency=1)
    rgb = read_reference(path)
    assert tuple(rgb[0, 0]) == (0, 128, 0)
    assert tuple(rgb[0, 1]) == (255, 255, 255)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    values = np.full((4, 4), 32768, np.uint16)  # mid gray in 16 bits
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = read_reference(path)
    assert (rgb == 128).all()


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("RGB", (16, 16), (30, 120, 200)).convert("CMYK").save(path, quality=98)
    assert Image.open(path).mode == "CMYK"
    rgb = read_reference(path)
    assert np.abs(rgb.reshape(-1, 3).mean(axis=0) - (30, 120, 200)).max() < 6


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((30, 40, 3), np.uint8)  # 40 wide, 30 high as stored
    stored[:5, :5] = (255, 0, 0)  # red marker top-left in storage
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=98)

    rgb = read_reference(path)

    assert rgb.shape == (40, 30, 3)  # upright: 30 wide, 40 high
    # A clockwise turn moves the stored top-left corner to the top-right.
    assert rgb[:4, -4:, 0].mean() > 200 and rgb[:4, :4, 0].mean() < 60


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that announces width x height pixels but holds almost no data (a 'bomb')."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [12_000, 30_000])  # over 1x and over 2x Pillow's limit
def test_decompression_bomb_is_rejected(tmp_path, side):
    path = tmp_path / "bomb.png"
    _png_header_only(path, side, side)
    with pytest.raises(ReferenceUnreadableError, match="smaller image"):
        read_reference(path)


def test_resized_to_frame_size(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (10, 10), (50, 100, 150)).save(path)
    rgb = load_reference(path, (64, 48))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - (50, 100, 150)).max() <= 1


def test_same_size_is_returned_unchanged(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    path = tmp_path / "exact.png"
    Image.fromarray(pixels).save(path)
    assert np.array_equal(load_reference(path, (16, 12)), pixels)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: None,  # missing
        lambda p: p.write_bytes(b""),  # empty
        lambda p: p.write_text("hello"),  # not an image
        lambda p: p.mkdir(),  # a folder
    ],
    ids=["missing", "empty", "text", "folder"],
)
def test_unreadable_references(tmp_path, make):
    path = tmp_path / "ref.png"
    make(path)
    with pytest.raises(ReferenceUnreadableError):
        read_reference(path)


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    noise = np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ReferenceUnreadableError, match="truncated"):
        read_reference(path)
