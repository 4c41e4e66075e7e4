"""Reading one image the same way everywhere (training, calibration, verification, bench).

PIL decodes; EXIF orientation is applied; grayscale, palette, RGBA (composited on white), CMYK
and 16-bit images become 8-bit RGB; the whole image is stretched to the model's input size with
bilinear filtering (no crop), the resize recorded in the ModelSpec as ``stretch-bilinear``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageReadError(Exception):
    """A file that cannot be decoded as an image (carries a short reason)."""


def open_rgb(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an 8-bit RGB PIL image with EXIF orientation applied."""
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(_reason(exc)) from exc


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


def load_image(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Return ``path`` as uint8 RGB of shape ``(height, width, 3)``, resized for the model."""
    height, width = size
    img = open_rgb(path)
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def load_images(paths, size: tuple[int, int]) -> np.ndarray:
    """Stack of ``load_image`` results, shape ``(N, height, width, 3)`` uint8."""
    if not paths:
        return np.zeros((0, size[0], size[1], 3), np.uint8)
    return np.stack([load_image(p, size) for p in paths])


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
