"""The run directory: layout, the split file lists, the edge marker, and finding a finished run.

A run is finished when ``spec.json`` exists: train writes it last, after the model and metrics,
so an interrupted run is never mistaken for a finished one. Every run directory carries a marker
(``.edge-run.json``, written when the run starts) with the run's identity: a random run id, its
name, when it was created and by which edge. The marker is edge's proof that it wrote the folder:
``--force`` replaces only a folder that carries it, never one merely holding a ``split/``.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
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
RUN_MARKER = ".edge-run.json"
MARKER_KIND = "edge-run"


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


@dataclass(frozen=True)
class RunIdentity:
    """Who a run is: what ``.edge-run.json`` holds and ModelSpec.run_id repeats."""

    run_id: str
    name: str
    created: str
    edge_version: str

    @classmethod
    def new(cls, name: str) -> RunIdentity:
        from edge import __version__

        return cls(secrets.token_hex(8), name, datetime.now(UTC).isoformat(timespec="seconds"), __version__)


def write_marker(run_dir: Path, identity: RunIdentity) -> Path:
    """Write ``.edge-run.json`` (atomically) into ``run_dir``: from now on edge may replace it."""
    path = Path(run_dir) / RUN_MARKER
    atomic_write_text(path, json.dumps({"kind": MARKER_KIND, **asdict(identity)}, indent=1) + "\n")
    return path


def read_marker(run_dir: Path) -> RunIdentity | None:
    """The identity in ``run_dir``'s marker; None when there is no readable edge marker."""
    path = Path(run_dir) / RUN_MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != MARKER_KIND:
            return None
        return RunIdentity(str(data["run_id"]), str(data["name"]), str(data["created"]), str(data["edge_version"]))
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


def is_edge_run(run_dir: Path) -> bool:
    """True only for a folder carrying edge's run marker (the proof that edge wrote it)."""
    return Path(run_dir).is_dir() and read_marker(run_dir) is not None


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
