"""Synthetic class-folder datasets: procedurally drawn images a small CNN can learn.

Each class is one visual concept: a shape family (circle, square, triangle, star, ...) drawn in
its own colour family with its own fill texture. Nuisance variation keeps the task from being
trivial: backgrounds (flat, linear or radial gradients, blotches, noise) in muted colours, object
size, position, rotation and aspect, colour jitter, faint low-contrast distractor shapes, a little
blur, pixel noise and JPEG compression.

Up to ``len(SHAPES)`` classes are named after their shape ("circle", "square", ...); more classes
combine shape x colour x texture and are named after all three ("blue_star", "red_circle_dots").
Every image is drawn from its own random stream seeded by ``(seed, class, index)``, so the same
arguments always give byte-identical files. Pure PIL + NumPy: importing this never loads TensorFlow.

The dataset is drawn into a hidden sibling folder, which gets edge's synth marker
(``.edge-synth.json``: the arguments that drew it), and is then swapped in. ``force`` replaces only a
folder carrying that marker, and only once the new dataset is complete.
"""

from __future__ import annotations

import colorsys
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edge.errors import EdgeError
from edge.fileio import atomic_write_text, ensure_writable_dir, os_reason, remove, sibling_dir, swap_in_dir

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "stripes", "crescent")
# Colour families (name, hue in [0, 1)); ordered so the first few are as far apart as possible.
PALETTES = (
    ("red", 0.00),
    ("blue", 0.62),
    ("green", 0.33),
    ("yellow", 0.15),
    ("purple", 0.78),
    ("orange", 0.07),
    ("cyan", 0.50),
    ("pink", 0.91),
)
TEXTURES = ("solid", "stripes", "gradient", "dots", "checker")
FORMATS = ("jpg", "png", "mixed")
MAX_CLASSES = len(SHAPES) * len(PALETTES) * len(TEXTURES)
SUPERSAMPLE = 2
MARKER = ".edge-synth.json"  # edge's proof that it drew a folder (what --force may replace)
MARKER_KIND = "edge-synth"


@dataclass(frozen=True)
class SynthClass:
    """What one class looks like."""

    name: str
    shape: str
    palette: str
    hue: float
    texture: str


@dataclass
class SynthResult:
    """Where the dataset went, its class names (sorted, i.e. the order a folder scan lists them)
    and the number of images written per class."""

    out_dir: Path
    labels: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def class_table(classes: int) -> list[SynthClass]:
    """The visual definition of each of ``classes`` classes, in generation order."""
    if not 1 <= classes <= MAX_CLASSES:
        raise EdgeError(f"The number of synthetic classes must be between 1 and {MAX_CLASSES}, got {classes}.")
    n_shapes, n_palettes = len(SHAPES), len(PALETTES)
    table = []
    for k in range(classes):
        # Blocks of 8 cycle the colour against the shape (64 distinct pairs); blocks of 64 then
        # shift the texture, so every class has its own (shape, colour, texture).
        shape_i, block, super_block = k % n_shapes, k // n_shapes, k // (n_shapes * n_palettes)
        palette_i = (shape_i + block) % n_palettes
        texture_i = (shape_i + super_block) % len(TEXTURES)
        shape, (palette, hue), texture = SHAPES[shape_i], PALETTES[palette_i], TEXTURES[texture_i]
        if classes <= n_shapes:
            name = shape
        elif classes <= n_shapes * n_palettes:
            name = f"{palette}_{shape}"
        else:
            name = f"{palette}_{shape}_{texture}"
        table.append(SynthClass(name, shape, palette, hue, texture))
    assert len({c.name for c in table}) == classes
    return table


def synth(
    out_dir: str | Path,
    classes: int = 5,
    per_class: int = 60,
    image_size: int = 96,
    seed: int = 0,
    image_format: str = "jpg",
    force: bool = False,
    quiet: bool = False,
) -> SynthResult:
    """Write ``classes`` x ``per_class`` drawn images to ``out_dir/<class>/<class>_<i>.<ext>``.

    The tree is written to a temporary sibling and renamed into place, so an interrupted run
    leaves nothing half-written. A non-empty ``out_dir`` is refused unless ``force`` is set, and
    even then only a dataset drawn by this function (it carries ``.edge-synth.json``) is replaced,
    after the new one is complete.
    """
    out_dir = Path(out_dir).expanduser()
    image_format = image_format.lower() if isinstance(image_format, str) else image_format
    _check_options(classes, per_class, image_size, image_format, seed)
    check_destination(out_dir, force)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_synth_dataset(out_dir):
        raise EdgeError(f"{out_dir} was not written by edge data synth (it has no {MARKER}); refusing to replace it "
                        "even with --force.")
    table = class_table(classes)
    ensure_writable_dir(out_dir.absolute().parent, "output folder")
    try:
        tmp = sibling_dir(out_dir.absolute(), "tmp")
    except OSError as exc:
        raise EdgeError(f"Cannot create a folder beside {out_dir} to draw the dataset in ({os_reason(exc)}).") from None
    counts: dict[str, int] = {}
    try:
        with _progress(quiet) as bar:
            task = bar.add_task("Drawing images", total=classes * per_class, info="") if bar else None
            for class_index, spec in enumerate(table):
                folder = tmp / spec.name
                folder.mkdir()
                for i in range(per_class):
                    rng = np.random.default_rng([seed, class_index, i])
                    image = draw_image(spec, image_size, rng)
                    ext = _extension(image_format, rng)
                    (folder / f"{spec.name}_{i:04d}.{ext}").write_bytes(_encode(image, ext, rng))
                    if bar:
                        bar.update(task, advance=1, info=spec.name)
                counts[spec.name] = per_class
        marker = {"kind": MARKER_KIND, "classes": classes, "per_class": per_class, "image_size": image_size,
                  "seed": seed, "format": image_format, "labels": sorted(counts)}
        atomic_write_text(tmp / MARKER, json.dumps(marker, indent=1) + "\n")
        swap_in_dir(tmp, out_dir)
    except OSError as exc:
        raise EdgeError(f"Cannot write the dataset {out_dir} ({os_reason(exc)}).") from None
    finally:
        remove(tmp)
    return SynthResult(out_dir=out_dir, labels=sorted(counts), counts=dict(sorted(counts.items())))


# --------------------------------------------------------------------------- drawing


def draw_image(spec: SynthClass, size: int, rng: np.random.Generator) -> Image.Image:
    """One ``size`` x ``size`` RGB image of ``spec``'s concept with random nuisances."""
    big = size * SUPERSAMPLE
    canvas = _background(big, rng)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
        canvas = _add_distractor(canvas, spec.shape, rng)
    canvas = _add_object(canvas, spec, rng)
    img = Image.fromarray(_to_uint8(canvas)).resize((size, size), Image.LANCZOS)
    if rng.random() < 0.35:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 0.9))))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(rng.uniform(0.0, 6.0))
    return Image.fromarray(_to_uint8(arr))


def _background(big: int, rng: np.random.Generator) -> np.ndarray:
    """Muted background: flat, linear gradient, radial gradient or blotches, plus blotchy noise.

    Computed at half resolution (it is smooth) and upsampled to the drawing canvas.
    """
    half = big // SUPERSAMPLE
    c1 = _muted_colour(rng)
    c2 = _muted_colour(rng)
    yy, xx = np.mgrid[0:half, 0:half].astype(np.float32) / half
    kind = rng.integers(4)
    if kind == 0:
        t = np.zeros_like(xx)
    elif kind == 1:
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle) + 0.5
    elif kind == 2:
        cx, cy = rng.uniform(0.0, 1.0, 2)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) * 1.2
    else:
        t = np.zeros_like(xx)
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(0.0, 1.0, 2)
            r = rng.uniform(0.1, 0.35)
            t = np.maximum(t, np.clip(1.0 - np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r, 0, 1))
    t = np.clip(t, 0.0, 1.0)[..., None]
    canvas = c1 * (1 - t) + c2 * t
    noise_scale = np.float32(rng.uniform(0.0, 10.0))
    cells = -(-half // 4)
    low = rng.standard_normal((cells, cells, 1), dtype=np.float32)
    canvas = canvas + noise_scale * np.repeat(np.repeat(low, 4, 0), 4, 1)[:half, :half]
    canvas = canvas + rng.standard_normal(canvas.shape, dtype=np.float32) * (noise_scale * 0.5)
    return np.repeat(np.repeat(canvas, SUPERSAMPLE, 0), SUPERSAMPLE, 1)


def _add_distractor(canvas: np.ndarray, own_shape: str, rng: np.random.Generator) -> np.ndarray:
    """A small, faint shape of another family so position and edges alone do not give the class."""
    big = canvas.shape[0]
    shape = str(rng.choice([s for s in SHAPES if s != own_shape]))
    r = rng.uniform(0.08, 0.16) * big
    cx, cy = rng.uniform(r, big - r, 2)
    mask = _shape_mask(shape, big, cx, cy, r, rng.uniform(0, 2 * math.pi), rng.uniform(0.8, 1.0))
    colour = canvas[int(cy), int(cx)] + rng.normal(0, 22, 3).astype(np.float32)
    box = _box(big, cx, cy, r)
    m = mask[box][..., None]
    canvas[box] = canvas[box] * (1 - m) + colour * m
    return canvas


def _add_object(canvas: np.ndarray, spec: SynthClass, rng: np.random.Generator) -> np.ndarray:
    """The class's shape in its colour family and texture, at a random size, place and angle."""
    big = canvas.shape[0]
    r = rng.uniform(0.3, 0.42) * big
    margin = r * 0.9
    cx, cy = rng.uniform(margin, big - margin, 2)
    angle = rng.uniform(0, 2 * math.pi)
    aspect = rng.uniform(0.8, 1.0)
    mask = _shape_mask(spec.shape, big, cx, cy, r, angle, aspect)
    hue = (spec.hue + rng.normal(0, 0.02)) % 1.0
    c1 = _hsv(hue, rng.uniform(0.75, 1.0), rng.uniform(0.7, 1.0))
    c2 = c1 * np.float32(rng.uniform(0.55, 0.75))
    box = _box(big, cx, cy, r)
    fill = _texture(spec.texture, box, cx, cy, r, angle, c1, c2, rng) * np.float32(rng.uniform(0.85, 1.1))
    m = mask[box][..., None]
    canvas[box] = canvas[box] * (1 - m) + fill * m
    return canvas


def _box(big: int, cx: float, cy: float, r: float) -> tuple[slice, slice]:
    """Rows/columns that can hold a shape of radius ``r`` at (cx, cy) (generous for stars)."""
    reach = 1.25 * r
    return (
        slice(max(0, int(cy - reach)), min(big, int(cy + reach) + 1)),
        slice(max(0, int(cx - reach)), min(big, int(cx + reach) + 1)),
    )


def _texture(kind, box, cx, cy, r, angle, c1, c2, rng) -> np.ndarray:
    """Fill pattern over ``box`` in the object's own rotated frame, blending ``c1`` and ``c2``."""
    rows, cols = box
    yy, xx = np.mgrid[rows, cols].astype(np.float32)
    u = ((xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)) / r
    v = (-(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)) / r
    freq = rng.uniform(5.0, 7.0)
    if kind == "solid":
        t = np.clip(0.25 * np.sqrt(u**2 + v**2), 0, 1)
    elif kind == "stripes":
        t = (np.sin(u * freq) > 0).astype(np.float32)
    elif kind == "gradient":
        t = np.clip((u + 1) / 2, 0, 1)
    elif kind == "dots":
        t = ((np.sin(u * freq) * np.sin(v * freq)) > 0.35).astype(np.float32)
    else:  # checker
        t = ((np.sin(u * freq * 0.8) * np.sin(v * freq * 0.8)) > 0).astype(np.float32)
    t = t[..., None]
    return c1 * (1 - t) + c2 * t


def _shape_mask(shape, big, cx, cy, r, angle, aspect) -> np.ndarray:
    """Float mask in [0, 1] of one shape centred at (cx, cy), radius r, rotated, squashed."""
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)

    def poly(points, fill=255):
        pts = []
        for px, py in points:
            px, py = px, py * aspect
            pts.append(
                (cx + px * math.cos(angle) - py * math.sin(angle), cy + px * math.sin(angle) + py * math.cos(angle))
            )
        draw.polygon(pts, fill=fill)

    def ngon(n, radius, phase=0.0, ox=0.0):
        return [
            (ox + radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "circle":
        poly(ngon(48, r))
    elif shape == "square":
        poly(ngon(4, r, math.pi / 4))
    elif shape == "triangle":
        poly(ngon(3, r * 1.1, -math.pi / 2))
    elif shape == "star":
        poly(
            [
                (
                    (r * 1.1 if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + math.pi * k / 5),
                    (r * 1.1 if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + math.pi * k / 5),
                )
                for k in range(10)
            ]
        )
    elif shape == "cross":
        a, b = r, r * 0.32
        poly([(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b)])
    elif shape == "ring":
        poly(ngon(48, r))
        poly(ngon(48, r * 0.55), fill=0)
    elif shape == "stripes":
        for offset in (-0.66, 0.0, 0.66):
            y0, y1 = (offset - 0.17) * r, (offset + 0.17) * r
            poly([(-r, y0), (r, y0), (r, y1), (-r, y1)])
    elif shape == "crescent":
        poly(ngon(48, r))
        poly(ngon(48, r * 0.85, ox=r * 0.45), fill=0)
    else:  # pragma: no cover - guarded by SHAPES
        raise ValueError(shape)
    return np.asarray(mask, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- helpers


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    return _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.9))


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _extension(image_format: str, rng: np.random.Generator) -> str:
    if image_format == "mixed":
        return "png" if rng.random() < 0.5 else "jpg"
    return image_format


def _encode(image: Image.Image, ext: str, rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    if ext == "jpg":
        image.save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
    else:
        image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _check_options(classes: int, per_class: int, image_size: int, image_format: str, seed: int) -> None:
    if seed < 0:
        raise EdgeError(f"The seed must be a non-negative integer, got {seed}.")
    if not 1 <= classes <= MAX_CLASSES:
        raise EdgeError(f"The number of synthetic classes must be between 1 and {MAX_CLASSES}, got {classes}.")
    if per_class < 1:
        raise EdgeError(f"Images per class must be at least 1, got {per_class}.")
    if not 16 <= image_size <= 2048:
        raise EdgeError(f"The synthetic image size must be between 16 and 2048 pixels, got {image_size}.")
    if image_format not in FORMATS:
        raise EdgeError(f"Unknown image format {image_format!r}; choose one of {', '.join(FORMATS)}.")


def check_destination(out_dir: Path, force: bool) -> None:
    """Refuse a non-empty ``out_dir`` unless ``force``; never replace root, home or the working dir."""
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgeError(f"{out_dir} exists and is not a directory.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise EdgeError(f"{out_dir} is not empty; choose another directory or pass --force to replace it.")
        resolved = out_dir.resolve()
        protected = {Path(resolved.anchor), Path.home().resolve(), *Path.cwd().resolve().parents, Path.cwd().resolve()}
        if resolved in protected:
            raise EdgeError(f"Refusing to replace {out_dir} (the root, home or working directory) even with --force.")


def is_synth_dataset(path: Path) -> bool:
    """True only for a folder carrying the marker ``synth`` writes (what ``force`` may replace)."""
    try:
        return json.loads((Path(path) / MARKER).read_text(encoding="utf-8")).get("kind") == MARKER_KIND
    except (OSError, ValueError, AttributeError):
        return False


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(quiet: bool):
    if quiet:
        return _NoProgress()
    from edge.console import progress

    return progress(transient=False)
