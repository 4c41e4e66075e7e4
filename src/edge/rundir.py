"""The run directory: layout, the split file lists, and finding a finished run.

A run is finished when ``spec.json`` exists: train writes it last, after the model and metrics,
so an interrupted run is never mistaken for a finished one.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.fileio import atomic_write_text
from edge.spec import SPEC_FILE, ModelSpec

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.json"  # scan report: skipped files and per-class counts
SPLIT_DIR = "split"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "training_curves.png"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    path: str
    label: int


def split_file(run_dir: Path, split: str) -> Path:
    return Path(run_dir) / SPLIT_DIR / f"{split}.csv"


def write_split(run_dir: Path, split: str, samples: list[Sample], labels: list[str]) -> Path:
    """Write ``split/<split>.csv`` with columns ``path,label`` (label as its name)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    for s in samples:
        writer.writerow([s.path, labels[s.label]])
    path = split_file(run_dir, split)
    atomic_write_text(path, buf.getvalue())
    return path


def read_split(run_dir: Path, split: str, labels: list[str]) -> list[Sample]:
    path = split_file(run_dir, split)
    if not path.is_file():
        return []
    index = {name: i for i, name in enumerate(labels)}
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    try:
        return [Sample(row["path"], index[row["label"]]) for row in rows]
    except KeyError as exc:
        raise EdgeError(f"{path} names a label the model does not know: {exc}.") from None


@dataclass(frozen=True)
class Run:
    """A finished run directory, as later steps (export, bench) see it."""

    path: Path
    spec: ModelSpec

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def samples(self, split: str) -> list[Sample]:
        return read_split(self.path, split, self.spec.labels)

    def held_out(self) -> list[Sample]:
        """The test split, or the validation split when the run has no test split."""
        return self.samples("test") or self.samples("val")


def is_finished(run_dir: Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / SPEC_FILE).is_file() and (run_dir / MODEL_FILE).exists()


def open_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EdgeError(f"Run directory {run_dir} does not exist.")
    if not is_finished(run_dir):
        raise EdgeError(f"{run_dir} is not a finished edge run (no {SPEC_FILE} and {MODEL_FILE}); train it first.")
    return Run(run_dir, ModelSpec.load(run_dir / SPEC_FILE))
