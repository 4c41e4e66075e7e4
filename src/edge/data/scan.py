"""Scanning a dataset before training: find the images, validate every file and label, fail early and clearly.

Accepted layouts: a folder of class sub-folders; a folder already split into ``train/``, ``val/``
and optional ``test/`` (each with class sub-folders); a CSV of ``filename,label`` rows. Bad files
are skipped and listed, never allowed to crash training half-way (what "bad" means, and the rule
for big images, is in ``edge.data.images``).

Labels are checked here, once, for every layout: a label is not empty, has no control or
line-break character (labels.txt holds one per line), has no leading or trailing space (folder
names; CSV cells are stripped), and is unique after normalisation (Unicode NFC and case folding:
``Daisy`` and ``daisy`` are refused as two spellings of one class). Labels are stored in NFC.
A class folder that is a symbolic link into the data folder itself is refused (it would repeat
other images as a new class); links to folders elsewhere are followed.

A CSV has the file name in its first column and the label in its second. Its first row is a
header when its first cell is not an image file name (``filename,label``, ``image,class``, ...);
a header that names its columns (``file``/``filename``/``path``/``image``...,
``label``/``class``/``category``...) may list them in any order. File names are relative to the
data folder, and a name that leaves it (``../x.jpg``, an absolute path elsewhere) is refused unless
``allow_outside`` is set. A row repeating an earlier one (same file, same label) is skipped.

Byte-identical images under two different labels, and one file listed under two labels, are not
fatal: they are listed in ``ScannedData.conflicts`` (and the report) for the caller to warn about.
Only files of equal size are hashed, so this costs almost nothing.
"""

from __future__ import annotations

import csv
import hashlib
import os
import unicodedata
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edge.data.images import IMAGE_EXTENSIONS, check_image
from edge.errors import EdgeError
from edge.rundir import SPLITS, Sample

PRESPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
FILE_COLUMNS = ("filename", "file", "file_name", "filepath", "file_path", "path", "image", "image_path", "img")
LABEL_COLUMNS = ("label", "class", "class_name", "category", "target")
ALLOW_OUTSIDE_OPTION = "--csv-allow-outside"  # the CLI's name for scan(allow_outside=True), quoted in messages
_BAD_CATEGORIES = {"Cc": "a control character", "Zl": "a line break", "Zp": "a line break",
                   "Cs": "a character that is not valid UTF-8"}


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Conflict:
    """The same image reaching training under more than one label."""

    paths: tuple[str, ...]
    labels: tuple[str, ...]
    kind: str  # "same file" (one file listed under several labels) | "identical files" (same bytes)

    def describe(self) -> str:
        """One line for a warning, e.g. ``identical files under 'cat' and 'dog': a.jpg, b.jpg``."""
        return f"{self.kind} under {' and '.join(map(repr, self.labels))}: {', '.join(self.paths)}"

    def to_report(self) -> dict:
        return {"kind": self.kind, "labels": list(self.labels), "paths": list(self.paths)}


@dataclass
class ScannedData:
    """The validated images of a dataset, what was skipped, and images found under two labels."""

    root: Path
    layout: str  # "folders" | "presplit" | "csv"
    labels: list[str]
    samples: list[Sample]  # all usable images (folders / csv layouts)
    presplit: dict[str, list[Sample]] = field(default_factory=dict)  # presplit layout
    skipped: list[Skipped] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    csv_file: Path | None = None  # csv layout

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
            "csv": str(self.csv_file) if self.csv_file else None,
            "labels": self.labels,
            "counts": self.counts(),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "conflicts": [c.to_report() for c in self.conflicts],
        }


def scan(data: str | Path, csv_file: str | Path | None = None, min_per_class: int = 3, progress=None,
         allow_outside: bool = False) -> ScannedData:
    """Find and validate every image of a dataset; raise EdgeError for fatal problems.

    ``min_per_class`` is the fewest usable images a class needs (one per split by default);
    ``allow_outside`` lets CSV rows name files outside the data folder.
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
        result = _scan_csv(data, Path(csv_file).expanduser(), progress, allow_outside)
    elif _presplit_dirs(data):
        result = _scan_presplit(data, progress)
    else:
        result = _scan_folders(data, progress)
    _check(result, min_per_class)
    result.conflicts = find_conflicts(result.samples, result.labels)
    return result


# --- labels ------------------------------------------------------------------------------------

def label_problem(text: str) -> str | None:
    """Why ``text`` cannot be a label, as the end of a sentence ("is empty", ...); None when it can."""
    if not text.strip():
        return "is empty"
    for char in text:
        what = _BAD_CATEGORIES.get(unicodedata.category(char))
        if what:
            return f"contains {what} (U+{ord(char):04X})"
    if text != text.strip():
        return "starts or ends with a space"
    return None


def _label_key(label: str) -> str:
    return unicodedata.normalize("NFC", label).casefold()


def _two(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` quoted so that they can be told apart (escaped when they look the same)."""
    same = unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)
    return (ascii(a), ascii(b)) if same else (repr(a), repr(b))


# --- layouts -----------------------------------------------------------------------------------

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


def _refuse_inner_link(folder: Path, root: Path, what: str) -> None:
    """A folder that is a symbolic link resolving inside the data folder would repeat its images."""
    if not folder.is_symlink():
        return
    target, inside = folder.resolve(), root.resolve()
    if target == inside or inside in target.parents:
        raise EdgeError(f"{what} is a symbolic link to {target}, inside the data folder itself; remove the link, "
                        f"since it would use the same images twice.")


def _class_folders(parent: Path, root: Path, prefix: str = "") -> dict[str, Path]:
    """Label (NFC) -> class folder for the sub-folders of ``parent``, every name checked as a label."""
    found: dict[str, Path] = {}
    shown: dict[str, str] = {}  # normalised key -> folder name as the user sees it
    for folder in _subdirs(parent):
        where = prefix + folder.name
        _refuse_inner_link(folder, root, f"Class folder {where!r}")
        problem = label_problem(folder.name)
        if problem:
            raise EdgeError(f"Class folder {where!r} {problem}; rename the folder (its name is the class label).")
        label = unicodedata.normalize("NFC", folder.name)
        key = _label_key(label)
        if key in shown:
            a, b = _two(shown[key], where)
            raise EdgeError(f"Class folders {a} and {b} differ only in letter case or Unicode form; "
                            f"merge or rename them so that each class has one name.")
        shown[key] = where
        found[label] = folder
    return found


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
    folders = _class_folders(root, root)
    for f in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
        skipped.append(Skipped(str(f), "image not inside a class folder"))  # LICENSE/README files are fine
    labels = sorted(folders)
    candidates = {label: _list_class_files(folders[label], skipped) for label in labels}
    samples = _validate(candidates, labels, skipped, progress)
    return ScannedData(root, "folders", labels, samples, skipped=skipped)


def _scan_presplit(root: Path, progress) -> ScannedData:
    skipped: list[Skipped] = []
    dirs = _presplit_dirs(root)
    per_split: dict[str, dict[str, Path]] = {}
    shown: dict[str, str] = {}  # normalised key -> "split/folder" first seen
    for split, split_dir in sorted(dirs.items()):
        _refuse_inner_link(split_dir, root, f"Split folder {split_dir.name!r}")
        per_split[split] = _class_folders(split_dir, root, f"{split_dir.name}/")
        for label in per_split[split]:
            where = f"{split_dir.name}/{label}"
            first = shown.setdefault(_label_key(label), where)
            if first.split("/", 1)[1] != label:
                a, b = _two(first, where)
                raise EdgeError(f"Class folders {a} and {b} differ only in letter case or Unicode form; "
                                f"rename one so that each class has one name in every split.")
    labels = sorted({label for folders in per_split.values() for label in folders})
    presplit: dict[str, list[Sample]] = {}
    for split in SPLITS:
        if split not in dirs:
            continue
        folders = per_split[split]
        candidates = {label: _list_class_files(folders[label], skipped) if label in folders else []
                      for label in labels}
        presplit[split] = _validate(candidates, labels, skipped, progress, f"Checking {split} images")
    samples = [s for split in presplit.values() for s in split]
    return ScannedData(root, "presplit", labels, samples, presplit=presplit, skipped=skipped)


def _read_csv_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """(row number, stripped cells) of every non-blank row; row numbers count from 1 like an editor's lines."""
    if not csv_path.is_file():
        raise EdgeError(f"CSV file {csv_path} does not exist.")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(fh), 1)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EdgeError(f"Could not read CSV file {csv_path}: {exc}.") from exc
    return [(n, row) for n, row in rows if any(row)]


def _csv_columns(root: Path, rows: list[tuple[int, list[str]]]) -> tuple[int, int, list[tuple[int, list[str]]]]:
    """(file column, label column, data rows): the header, when there is one, is recognised and dropped."""
    first = rows[0][1] if rows else []
    if not first or Path(first[0]).suffix.lower() in IMAGE_EXTENSIONS or (root / first[0]).is_file():
        return 0, 1, rows
    names = [c.lower().replace(" ", "_") for c in first]
    file_col = next((i for i, c in enumerate(names) if c in FILE_COLUMNS), 0)
    label_col = next((i for i, c in enumerate(names) if c in LABEL_COLUMNS), 1 if file_col == 0 else 0)
    return file_col, label_col, rows[1:]


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in ``root``, judged on the names (links inside the folder may point anywhere)."""
    return Path(os.path.normpath(os.path.abspath(path))).is_relative_to(os.path.normpath(os.path.abspath(root)))


def _scan_csv(root: Path, csv_path: Path, progress, allow_outside: bool = False) -> ScannedData:
    file_col, label_col, rows = _csv_columns(root, _read_csv_rows(csv_path))
    if not rows:
        raise EdgeError(f"CSV file {csv_path} has no rows of filename,label.")
    skipped: list[Skipped] = []
    candidates: dict[str, list[Path]] = defaultdict(list)
    first_row: dict[str, tuple[str, int]] = {}  # normalised label -> (label, row) first seen
    seen: dict[tuple[str, str], int] = {}  # (file, label) -> row
    for n, row in rows:
        if len(row) <= max(file_col, label_col):
            raise EdgeError(f"Row {n} of CSV file {csv_path} does not have the two columns filename,label.")
        filename, raw = row[file_col], row[label_col]
        if not filename:
            raise EdgeError(f"Row {n} of CSV file {csv_path} has an empty file name.")
        problem = label_problem(raw)
        if problem == "is empty":
            raise EdgeError(f"Row {n} of CSV file {csv_path} has an empty label.")
        if problem:
            raise EdgeError(f"Row {n} of CSV file {csv_path} has a label that {problem}: {raw!r}.")
        label = unicodedata.normalize("NFC", raw)
        other, m = first_row.setdefault(_label_key(label), (label, n))
        if other != label:
            a, b = _two(other, label)
            raise EdgeError(f"CSV file {csv_path} spells one label two ways, {a} (row {m}) and {b} (row {n}), "
                            f"differing only in letter case or Unicode form; use one spelling per class.")
        path = Path(filename).expanduser()
        path = path if path.is_absolute() else root / path
        if not allow_outside and not _inside(path, root):
            raise EdgeError(f"Row {n} of CSV file {csv_path} names {filename!r}, which is outside the data folder "
                            f"{root}; move the file into it or allow files outside it ({ALLOW_OUTSIDE_OPTION}).")
        m = seen.setdefault((os.path.normpath(os.path.abspath(path)), label), n)
        if m != n:
            skipped.append(Skipped(str(path), f"repeats row {m} of {csv_path.name} (same file and label)"))
            continue
        candidates[label].append(path)
    labels = sorted(candidates)
    samples = _validate(candidates, labels, skipped, progress)
    return ScannedData(root, "csv", labels, samples, skipped=skipped, csv_file=csv_path)


# --- validation ----------------------------------------------------------------------------------

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


def find_conflicts(samples: list[Sample], labels: list[str]) -> list[Conflict]:
    """Files, or byte-identical copies, that appear under more than one label.

    Only files whose size another file of a different label shares are read, first their first
    64 KiB, then (if those match too) in full.
    """
    labels_of: dict[str, set[int]] = defaultdict(set)
    for s in samples:
        labels_of[s.path].add(s.label)
    conflicts = [Conflict((path,), tuple(labels[i] for i in sorted(found)), "same file")
                 for path, found in labels_of.items() if len(found) > 1]

    def mixed(paths: list[str]) -> bool:
        return len(paths) > 1 and len(set().union(*(labels_of[p] for p in paths))) > 1

    groups: list[list[str]] = [g for g in _group(labels_of, _size).values() if mixed(g)]
    for key in (_head_digest, _digest):
        groups = [g for group in groups for g in _group(group, key).values() if mixed(g)]
    for group in groups:
        found = set().union(*(labels_of[p] for p in group))
        conflicts.append(Conflict(tuple(sorted(group)), tuple(labels[i] for i in sorted(found)), "identical files"))
    return conflicts


def _group(paths, key) -> dict:
    out: dict = defaultdict(list)
    for path in paths:
        value = key(path)
        if value is not None:
            out[value].append(path)
    return out


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _head_digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read(65536)).digest()
    except OSError:
        return None


def _digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").digest()
    except OSError:
        return None


def _check(data: ScannedData, min_per_class: int) -> None:
    source = f"CSV file {data.csv_file}" if data.csv_file else None
    if not data.samples:
        if source:
            raise EdgeError(f"No row of {source} names a usable image (file names are relative to {data.root}).")
        raise EdgeError(f"No images found in {data.root}; expected one sub-folder per class with images inside.")
    if len(data.labels) < 2:
        if source:
            raise EdgeError(f"{source} has only one label ({data.labels[0]}); a classifier needs at least two.")
        raise EdgeError(
            f"Found only one class ({data.labels[0]}) in {data.root}; a classifier needs at least two class folders."
        )
    groups = data.presplit or {"all": data.samples}
    for split, samples in groups.items():
        counts = Counter(s.label for s in samples)
        for i, label in enumerate(data.labels):
            n = counts.get(i, 0)
            if n == 0 and split in ("all", "train"):
                if source:
                    raise EdgeError(f"No row of {source} with the label {label!r} names a usable image.")
                where = f"{split}/{label}" if data.presplit else label
                raise EdgeError(f"Class folder {where!r} has no usable images.")
            if split == "all" and n < min_per_class:
                raise EdgeError(
                    f"Class {label!r} has only {n} usable image(s); the split needs at least {min_per_class} per class."
                )
