"""How consumers resize a photo to the model's input: the named variants edge measures and trains for.

By default edge decodes and resizes with Pillow's antialiased bilinear filter (``load_image``, the
ModelSpec's ``stretch-bilinear``); a model trained with ``--resize stretch-mediapipe`` resizes as
MediaPipe Tasks does instead, everywhere edge runs it (``MODES``, ``own_filter``). The apps that
run an exported model resize their own way (MediaPipe Tasks, iOS Vision, a browser canvas each
have their own filter), and many mobile pipelines sample four pixels without antialiasing. A model
that only ever saw one resize can change its answer on the same photo under another one. ``RESIZERS`` names the variants (the whole image stretched to the input
size, as training did; only the filter differs):

* ``pillow-bilinear``: edge's own (the reference every other variant is compared with);
* ``pillow-bicubic``: antialiased bicubic (Pillow, and most photo tools' default);
* ``area``: box filter, the mean of the covered pixels (TF/OpenCV "area");
* ``bilinear-no-antialias``: four-pixel bilinear sampling at half-pixel centres, as
  ``tf.image.resize(antialias=False)`` and OpenCV's ``INTER_LINEAR`` do;
* ``nearest``: nearest neighbour (the crudest thing an app can do);
* ``mediapipe-cpu``: MediaPipe Tasks' own resize on a CPU (``mediapipe_cpu``), reproduced exactly:
  the same pixels MediaPipe's ImageClassifier feeds the model (tested against MediaPipe itself).

``edge.data.images.load_image(path, size, variant)`` decodes a photo as edge does and resizes it
with a variant. Training can draw a variant per image for its augmented views (``TrainConfig.resize_augment``),
and ``edge bench`` (unless ``--no-resize-variants``) reports each model's top-1 agreement with itself under every
variant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

REFERENCE = "pillow-bilinear"


def _pillow(method) -> Callable[[Image.Image, tuple[int, int]], np.ndarray]:
    def resize(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        if img.size != (width, height):
            img = img.resize((width, height), method)
        return np.asarray(img, dtype=np.uint8)

    return resize


def bilinear_no_antialias(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Four-pixel bilinear sampling at half-pixel centres (``tf.image.resize(..., antialias=False)``)."""
    height, width = size
    src = np.asarray(img, dtype=np.float32)
    if src.shape[:2] == (height, width):
        return src.astype(np.uint8)

    def axis(out: int, size_in: int):
        pos = np.clip((np.arange(out, dtype=np.float64) + 0.5) * (size_in / out) - 0.5, 0, size_in - 1)
        low = np.floor(pos).astype(np.int64)
        high = np.minimum(low + 1, size_in - 1)
        return low, high, (pos - low).astype(np.float32)

    y0, y1, fy = axis(height, src.shape[0])
    x0, x1, fx = axis(width, src.shape[1])
    top = src[y0][:, x0] * (1 - fx)[None, :, None] + src[y0][:, x1] * fx[None, :, None]
    bottom = src[y1][:, x0] * (1 - fx)[None, :, None] + src[y1][:, x1] * fx[None, :, None]
    out = top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def mediapipe_cpu(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """MediaPipe Tasks' CPU image-to-tensor resize: OpenCV's ``warpPerspective`` with ``INTER_LINEAR``
    from the whole image's corners to the input's corners. Output pixel ``x`` samples the source at
    ``x * (width_in / width_out)`` (pixel corners aligned, not pixel centres: no half-pixel shift),
    that position rounded to 1/32 pixel (OpenCV's ``INTER_BITS``), edges clamped, the four
    neighbours weighted in 1/32 steps per axis and the sum rounded half up: OpenCV's fixed-point
    arithmetic, here in integers. Measured against MediaPipe's own pixels: identical
    (``tests/test_tflite_metadata.py``); bilinear at pixel centres (``bilinear-no-antialias``)
    differs by 2.6 levels on average."""
    height, width = size
    src = np.asarray(img, dtype=np.uint8)
    if src.shape[:2] == (height, width):
        return src.copy()
    channels = src.shape[2]

    def axis(out: int, size_in: int):
        steps = np.round(np.arange(out, dtype=np.float64) * (size_in / out) * 32).astype(np.int64)  # 1/32 px
        low = np.minimum(steps >> 5, size_in - 1)
        return low, np.minimum(low + 1, size_in - 1), (steps & 31).astype(np.int32)

    y0, y1, fy = axis(height, src.shape[0])
    x0, x1, fx = axis(width, src.shape[1])
    fx = np.repeat(fx, channels)  # per value of a (height, width * channels) row

    def blend(rows):  # the sampled rows (uint8) -> 32 x their horizontal blend, as int32
        left = np.take(rows, x0, axis=1).reshape(height, -1).astype(np.int32)
        right = np.take(rows, x1, axis=1).reshape(height, -1).astype(np.int32)
        return left * (32 - fx) + right * fx

    fy = fy[:, None]
    out = (blend(src[y0]) * (32 - fy) + blend(src[y1]) * fy + 512) >> 10  # / 1024, rounded half up
    return out.astype(np.uint8).reshape(height, width, channels)


RESIZERS: dict[str, Callable[[Image.Image, tuple[int, int]], np.ndarray]] = {
    REFERENCE: _pillow(Image.BILINEAR),
    "pillow-bicubic": _pillow(Image.BICUBIC),
    "area": _pillow(Image.BOX),
    "bilinear-no-antialias": bilinear_no_antialias,
    "nearest": _pillow(Image.NEAREST),
    "mediapipe-cpu": mediapipe_cpu,
}


def others(own: str) -> tuple[str, ...]:
    """Every filter but ``own``: how other apps may resize for a model that expects ``own``."""
    return tuple(name for name in RESIZERS if name != own)


VARIANTS = others(REFERENCE)  # what consumers may do instead of edge's default

# A model's own resize (``ModelSpec.resize``, ``edge train --resize``) -> the filter that reproduces it.
# Training, the export gate, calibration, bench and predict all resize with the model's own filter.
MODES = {"stretch-bilinear": REFERENCE, "stretch-mediapipe": "mediapipe-cpu"}
MODE_NOTES = {"stretch-bilinear": "Pillow's antialiased bilinear", "stretch-mediapipe": "MediaPipe Tasks' own"}
DEFAULT_MODE = "stretch-bilinear"
FULL_DECODE = ("mediapipe-cpu",)  # filters that must see the photo decoded at full size, as their app does


def own_filter(mode: str) -> str:
    """The filter of a model whose ModelSpec.resize is ``mode`` (EdgeError for a mode edge does not know)."""
    if mode not in MODES:
        from edge.errors import EdgeError

        raise EdgeError(f"The model's resize '{mode}' is not one edge knows ({', '.join(MODES)}); "
                        "a newer edge may have made it.")
    return MODES[mode]


def resize(img: Image.Image, size: tuple[int, int], variant: str = REFERENCE) -> np.ndarray:
    """``img`` (RGB) stretched to ``size`` = (height, width) with ``variant``'s filter, as uint8."""
    return RESIZERS[variant](img, size)
