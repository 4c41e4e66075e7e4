"""The shared image loader: HEIC/HEIF photos, and big images (edge's pixel limit, cheap validation and
reduced-scale decoding, no raw Pillow "decompression bomb" warning). No TensorFlow here."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.data.images import MAX_PIXELS, ImageReadError, check_image, load_image, open_rgb
from edge.data.scan import scan


def _png(path: Path, width: int, height: int, *, mode: str = "L", real: bool = True) -> Path:
    """A PNG of zeros written row by row (a 100-megapixel file costs no memory to make); with
    ``real=False`` only the header is honest (the pixel data is a stub: enough for Image.open)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    channels, color = {"L": (1, 0), "RGB": (3, 2)}[mode]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    if real:
        comp, row = zlib.compressobj(1), bytes(1 + width * channels)
        idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    else:
        idat = zlib.compress(bytes(1 + width * channels))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


# --- HEIC / HEIF ----------------------------------------------------------------------------------

def _heic(path: Path, img: Image.Image, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert "HEIF" in Image.SAVE, "importing edge.data.images did not register pillow-heif with Pillow"
    try:
        img.save(path, format="HEIF", **save)
    except (OSError, RuntimeError, ValueError) as exc:  # no HEVC encoder in this pillow-heif build
        pytest.skip(f"pillow-heif cannot encode HEIC here ({exc})")
    return path


def test_heic_photos_are_scanned_and_loaded(tmp_path):
    for name, color in {"red": (220, 20, 20), "blue": (20, 20, 220)}.items():
        for i in range(3):
            suffix = ".heic" if i % 2 == 0 else ".HEIF"
            _heic(tmp_path / "d" / name / f"IMG_{i}{suffix}", Image.new("RGB", (64, 48), color))
    data = scan(tmp_path / "d")
    assert data.labels == ["blue", "red"] and len(data.samples) == 6 and not data.skipped
    red = load_image(next(s.path for s in data.samples if s.label == 1), (16, 16)).astype(int)
    assert red.shape == (16, 16, 3) and red[..., 0].mean() > 180 and red[..., 2].mean() < 60


def test_heic_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display (an iPhone held upright)
    path = _heic(tmp_path / "rot.heic", stored, exif=exif.tobytes(), quality=95)
    upright = load_image(path, (40, 20))  # displayed: 20 wide, 40 high, red on top
    assert upright[:15, :, 0].mean() > 200 and upright[25:, :, 2].mean() > 200


# --- big images -------------------------------------------------------------------------------------

def test_100_megapixel_image_is_accepted_without_pillow_warning(tmp_path):
    path = _png(tmp_path / "huge.png", 10_000, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would raise here
        assert check_image(path) is None


def test_100_megapixel_image_is_validated_in_little_memory(tmp_path):
    path = _png(tmp_path / "huge.png", 10_000, 10_000, mode="RGB")  # 300 MB decoded
    code = (
        "import resource, sys\n"
        "from edge.data.images import check_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "assert check_image(sys.argv[1]) is None\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) < 50, f"validating used {proc.stdout.strip()} MB more"
    assert proc.stderr == ""


@pytest.mark.parametrize("width,height", [(20_000, 15_000), (30_000, 20_000)])  # 300 MP (Pillow warns), 600 MP (Pillow refuses)
def test_image_over_the_pixel_limit_is_skipped_with_edges_sentence(tmp_path, width, height):
    path = _png(tmp_path / "giant.png", width, height, real=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reason = check_image(path)
        with pytest.raises(ImageReadError) as info:
            load_image(path, (32, 32))
    assert width * height > MAX_PIXELS
    limit = f"edge skips images over {MAX_PIXELS // 1_000_000} megapixels"
    assert reason.startswith("too large") and limit in reason and str(info.value) == reason
    assert "DOS" not in reason and "bomb" not in reason


def test_scan_lists_an_image_over_the_limit_as_skipped(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "d" / name / f"{i}.png")
    _png(tmp_path / "d" / "a" / "giant.png", 20_000, 15_000, real=False)
    data = scan(tmp_path / "d")
    assert [(Path(s.path).name, s.reason.split(" (")[0]) for s in data.skipped] == [("giant.png", "too large")]
    assert len(data.samples) == 6


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (5000, 4000), (30, 160, 90)).save(path, quality=90)  # 20 MP
    img = open_rgb(path, (224, 224))
    assert min(img.size) >= 448 and img.size == (625, 500)  # libjpeg at 1/8 scale: still twice the input
    assert open_rgb(path).size == (5000, 4000)
    arr = load_image(path, (224, 224)).astype(int)
    assert arr.shape == (224, 224, 3) and abs(arr.mean(axis=(0, 1)) - (30, 160, 90)).max() < 4


def test_large_png_is_reduced_before_resizing(tmp_path):
    path = _png(tmp_path / "big.png", 4200, 4000, mode="RGB")  # 16.8 MP, just over LARGE_PIXELS
    assert open_rgb(path, (224, 224)).size == (525, 500)  # reduce(8): each side still twice the input
    assert load_image(path, (224, 224)).shape == (224, 224, 3)


def test_small_images_decode_exactly_as_before(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=95)
    path = tmp_path / "photo.jpg"
    path.write_bytes(buf.getvalue())
    with Image.open(path) as img:
        expected = np.asarray(img.convert("RGB").resize((32, 48), Image.BILINEAR))
    assert np.array_equal(load_image(path, (48, 32)), expected)
