"""Scanning a dataset before training: find the images, validate every file, fail early and clearly.

Accepted layouts: a folder of class sub-folders; a folder already split into ``train/``, ``val/``
and optional ``test/`` (each with class sub-folders); a CSV of ``filename,label``. Bad files are
skipped and listed, never allowed to crash training half-way.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from edge.data.images import IMAGE_EXTENSIONS, ImageReadError, open_rgb
from edge.errors import EdgeError
from edge.rundir import SPLITS, Sample

PRESPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class ScannedData:
    """The validated images of a dataset and what was skipped."""

    root: Path
    layout: str  # "folders" | "presplit" | "csv"
    labels: list[str]
    samples: list[Sample]  # all usable images (folders / csv layouts)
    presplit: dict[str, list[Sample]] = field(default_factory=dict)  # presplit layout
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label: images per split (presplit) or in total (``all``)."""
        groups = self.presplit if self.presplit else {"all": self.samples}
        table = {label: {name: 0 for name in groups} for label in self.labels}
        for name, samples in groups.items():
            for label, n in Counter(s.label for s in samples).items():
                table[self.labels[label]][name] = n
        return table

    def to_report(self) -> dict:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "labels": self.labels,
            "counts": self.counts(),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


def scan(data: str | Path, csv_file: str | Path | None = None, min_per_class: int = 3, progress=None) -> ScannedData:
    """Find and validate every image of a dataset; raise EdgeError for fatal problems.

    ``min_per_class`` is the fewest usable images a class needs (one per split by default).
    """
    data = Path(data).expanduser()
    if csv_file is None and data.is_file() and data.suffix.lower() == ".csv":
        data, csv_file = data.parent, data
    if not data.exists():
        raise EdgeError(f"Data directory {data} does not exist.")
    if not data.is_dir():
        raise EdgeError(f"{data} is not a directory; pass a folder of class sub-folders or --csv FILE.")
    if not os.access(data, os.R_OK | os.X_OK):
        raise EdgeError(f"Data directory {data} is not readable.")

    if csv_file is not None:
        result = _scan_csv(data, Path(csv_file).expanduser(), progress)
    elif _presplit_dirs(data):
        result = _scan_presplit(data, progress)
    else:
        result = _scan_folders(data, progress)
    _check(result, min_per_class)
    return result


def _presplit_dirs(root: Path) -> dict[str, Path]:
    found = {}
    for child in _subdirs(root):
        split = PRESPLIT_NAMES.get(child.name.lower())
        if split:
            found[split] = child
    return found if {"train", "val"} <= set(found) else {}


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except PermissionError as exc:
        raise EdgeError(f"Directory {path} is not readable.") from exc


def _list_class_files(class_dir: Path, skipped: list[Skipped]) -> list[Path]:
    """Candidate image files of one class folder (recursively); hidden and non-image files skipped."""
    files = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith("."):
                skipped.append(Skipped(str(path), "hidden file"))
            elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(Skipped(str(path), "not an image file (extension)"))
            else:
                files.append(path)
    return files


def _scan_folders(root: Path, progress) -> ScannedData:
    skipped: list[Skipped] = []
    class_dirs = _subdirs(root)
    for f in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
        skipped.append(Skipped(str(f), "image not inside a class folder"))  # LICENSE/README files are fine
    labels = [d.name for d in class_dirs]
    candidates = {label: _list_class_files(d, skipped) for label, d in zip(labels, class_dirs)}
    samples = _validate(candidates, labels, skipped, progress)
    return ScannedData(root, "folders", labels, samples, skipped=skipped)


def _scan_presplit(root: Path, progress) -> ScannedData:
    skipped: list[Skipped] = []
    dirs = _presplit_dirs(root)
    labels = sorted({d.name for split_dir in dirs.values() for d in _subdirs(split_dir)})
    presplit: dict[str, list[Sample]] = {}
    for split in SPLITS:
        if split not in dirs:
            continue
        candidates = {}
        for label in labels:
            class_dir = dirs[split] / label
            candidates[label] = _list_class_files(class_dir, skipped) if class_dir.is_dir() else []
        presplit[split] = _validate(candidates, labels, skipped, progress, f"Checking {split} images")
    samples = [s for split in presplit.values() for s in split]
    return ScannedData(root, "presplit", labels, samples, presplit=presplit, skipped=skipped)


def _scan_csv(root: Path, csv_path: Path, progress) -> ScannedData:
    if not csv_path.is_file():
        raise EdgeError(f"CSV file {csv_path} does not exist.")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgeError(f"Could not read CSV file {csv_path}: {exc}.") from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["filename", "label"], ["path", "label"], ["file", "label"]):
        rows = rows[1:]
    bad = next((i for i, row in enumerate(rows) if len(row) < 2), None)
    if bad is not None:
        raise EdgeError(f"CSV file {csv_path} line {bad + 1} does not have the two columns filename,label.")
    skipped: list[Skipped] = []
    labels = sorted({row[1].strip() for row in rows})
    candidates: dict[str, list[Path]] = {label: [] for label in labels}
    for filename, label, *_ in rows:
        path = Path(filename.strip())
        path = path if path.is_absolute() else root / path
        candidates[label.strip()].append(path)
    samples = _validate(candidates, labels, skipped, progress)
    return ScannedData(root, "csv", labels, samples, skipped=skipped)


def check_image(path: Path) -> str | None:
    """Return None when ``path`` decodes as an image, else a short reason."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at reduced scale; still reads the whole stream
            img.load()
        return None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        try:  # some formats reject draft(); confirm with a full decode before giving up
            open_rgb(path)
            return None
        except ImageReadError:
            return f"not a readable image ({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__})"


def _validate(candidates: dict[str, list[Path]], labels: list[str], skipped: list[Skipped], progress,
              description: str = "Checking images") -> list[Sample]:
    index = {label: i for i, label in enumerate(labels)}
    flat = [(path, label) for label in labels for path in candidates.get(label, [])]
    task = progress.add_task(description, total=len(flat), info="") if progress else None
    samples: list[Sample] = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for (path, label), reason in zip(flat, pool.map(lambda item: check_image(item[0]), flat)):
            if reason is None:
                samples.append(Sample(str(path.resolve()), index[label]))
            else:
                skipped.append(Skipped(str(path), reason))
            if task is not None:
                progress.advance(task)
    return samples


def _check(data: ScannedData, min_per_class: int) -> None:
    if not data.samples:
        raise EdgeError(f"No images found in {data.root}; expected one sub-folder per class with images inside.")
    if len(data.labels) < 2:
        raise EdgeError(
            f"Found only one class ({data.labels[0]}) in {data.root}; a classifier needs at least two class folders."
        )
    groups = data.presplit or {"all": data.samples}
    for split, samples in groups.items():
        counts = Counter(s.label for s in samples)
        for i, label in enumerate(data.labels):
            n = counts.get(i, 0)
            where = f"{split}/{label}" if data.presplit else label
            if n == 0 and split in ("all", "train"):
                raise EdgeError(f"Class folder '{where}' has no usable images.")
            if split == "all" and n < min_per_class:
                raise EdgeError(
                    f"Class '{label}' has only {n} usable image(s); the split needs at least {min_per_class} per class."
                )
