"""Reading one image the same way everywhere (scan, training, calibration, verification, bench, predict).

PIL decodes, HEIC/HEIF photos (the iPhone camera default) included through pillow-heif; EXIF
orientation is applied (HEIF stores it as irot/imir boxes, which libheif applies while decoding);
grayscale, palette, RGBA (composited on white), CMYK and 16-bit images become 8-bit RGB; the whole
image is stretched to the model's input size with bilinear filtering (no crop), the resize recorded
in the ModelSpec as ``stretch-bilinear``, or with the model's own filter (``edge.data.resize.MODES``).

Big images. An image over ``MAX_PIXELS`` (250 megapixels) is refused with edge's own sentence (the
scan skips and lists it). Below that, images over ``LARGE_PIXELS`` (16 megapixels) are never
decoded at full size when the format allows less: a JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8
scale (Pillow's ``draft``), still at least twice the model's input size, and other formats are
decoded and then shrunk by an integer factor (Pillow's ``reduce``) before the final resize. The
scan checks a JPEG at 1/8 scale and a large image of another format with ``verify`` (PNG: every
chunk's checksum), so a 100-megapixel photo costs a few megabytes to validate. Images up to
``LARGE_PIXELS`` are decoded exactly as before: full size, then resized. A filter that reproduces an
app which decodes at full size (``edge.data.resize.FULL_DECODE``: MediaPipe's) always gets the full
photo.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin
from pillow_heif import register_heif_opener

from edge.data.resize import FULL_DECODE, REFERENCE, resize
from edge.errors import one_line

register_heif_opener()  # Image.open reads .heic/.heif from here on (every reader goes through this module)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif"}
MAX_PIXELS = 250_000_000  # larger images are refused (the scan skips and lists them)
LARGE_PIXELS = 16_000_000  # larger images are decoded at reduced scale where the format allows

# Pillow warns above Image.MAX_IMAGE_PIXELS (89 MP by default) and refuses above twice that, with a
# "possible decompression bomb DOS attack" message that means nothing to someone with a camera.
# edge applies its own limit (MAX_PIXELS) with its own sentence, so Pillow's limit is moved to it:
# Pillow now only warns for images edge refuses anyway (silenced in _quiet) and raises from twice
# MAX_PIXELS (reported with edge's sentence too).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageReadError(Exception):
    """A file that cannot be decoded as an image (carries a short reason)."""


def too_large_reason(size: tuple[int, int] | None) -> str:
    """edge's sentence for an image over MAX_PIXELS (``size`` is width, height when known)."""
    limit = f"edge skips images over {MAX_PIXELS // 1_000_000} megapixels"
    if size is None:
        return f"too large ({limit})"
    w, h = size
    return f"too large ({w} x {h} pixels = {w * h / 1e6:.0f} megapixels; {limit})"


def check_image(path: str | Path) -> str | None:
    """Return None when ``path`` is a usable image, else a short reason; never decodes a large
    image at full size (see the module docstring)."""
    try:
        if os.stat(path).st_size == 0:
            return "empty file (0 bytes)"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    large = False
    try:
        with _quiet(), _open(path) as img:
            large = img.width * img.height > LARGE_PIXELS
            if isinstance(img, JpegImagePlugin.JpegImageFile):
                img.draft(None, (64, 64))  # decoded at 1/8 scale: the whole stream is read, little memory
            elif large:
                img.verify()  # PNG: every chunk's CRC; formats without verify: the header only
                return None
            img.load()
            img.getexif()  # a malformed EXIF block would otherwise fail later, in exif_transpose
        return None
    except ImageReadError as exc:
        return str(exc)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if not large:  # a small image is decoded at full size for training: let that decoder decide
            try:
                open_rgb(path)
                return None
            except ImageReadError:
                pass
        return f"not a readable image ({one_line(exc, 80)})"


def open_rgb(path: str | Path, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``path`` into an 8-bit RGB PIL image with EXIF orientation applied.

    With ``min_size`` (width, height), an image over LARGE_PIXELS may come back smaller than
    stored, though never below twice ``min_size``'s larger side on either axis (as far as the image
    allows); without it the image is decoded at full size.
    """
    try:
        with _quiet(), _open(path) as img:
            side = 2 * max(min_size) if min_size else 0
            if side and img.width * img.height > LARGE_PIXELS:
                img.draft(None, (side, side))  # JPEG: libjpeg decodes at 1/2, 1/4 or 1/8 scale; others: no-op
            img.load()
            img = to_rgb(ImageOps.exif_transpose(img))
            factor = min(img.width, img.height) // side if side and img.width * img.height > LARGE_PIXELS else 1
            return img.reduce(factor) if factor >= 2 else img
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(one_line(exc, 120)) from exc


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray((arr / peak * 255.0).round().astype(np.uint8)).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | Path, size: tuple[int, int], variant: str = REFERENCE) -> np.ndarray:
    """Return ``path`` as uint8 RGB of shape ``(height, width, 3)``, resized for the model (with edge's
    own filter, or with another consumer's: ``variant``, a name in ``edge.data.resize.RESIZERS``)."""
    return load_variants(path, size, (variant,))[variant]


def load_variants(path: str | Path, size: tuple[int, int], variants) -> dict[str, np.ndarray]:
    """``load_image`` with each of ``variants``, the photo decoded once: at full size when every filter
    is one of ``FULL_DECODE`` (such an app decodes it at full size), and a large photo twice when
    those filters and others are asked for together."""
    height, width = size
    variants = tuple(variants)
    full_only = all(v in FULL_DECODE for v in variants)
    img = open_rgb(path, None if full_only else (width, height))
    full = img
    if not full_only and any(v in FULL_DECODE for v in variants) and img.width * img.height < _stored_pixels(path):
        full = open_rgb(path)
    return {variant: resize(full if variant in FULL_DECODE else img, size, variant) for variant in variants}


def _stored_pixels(path: str | Path) -> int:
    with _quiet(), _open(path) as img:
        return img.width * img.height


def load_images(paths, size: tuple[int, int], variant: str = REFERENCE) -> np.ndarray:
    """Stack of ``load_image`` results, shape ``(N, height, width, 3)`` uint8."""
    if not paths:
        return np.zeros((0, size[0], size[1], 3), np.uint8)
    return np.stack([load_image(p, size, variant) for p in paths])


def _open(path: str | Path) -> Image.Image:
    """``Image.open`` (header only); ImageReadError with edge's sentence for an image over MAX_PIXELS."""
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:  # over twice MAX_PIXELS: Pillow refuses before edge can look
        raise ImageReadError(too_large_reason(None)) from exc
    if img.width * img.height > MAX_PIXELS:
        size = img.size
        img.close()
        raise ImageReadError(too_large_reason(size))
    return img


class _quiet(warnings.catch_warnings):  # noqa: N801  (used like the lower-case context managers it wraps)
    """Pillow's DecompressionBombWarning silenced: edge refuses such images with its own sentence
    (see MAX_PIXELS), so the warning would only repeat it as a 'DOS attack'. (catch_warnings swaps
    the process-wide filter list; concurrent readers can at worst leave this one filter installed.)"""

    def __enter__(self):
        super().__enter__()
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return self
