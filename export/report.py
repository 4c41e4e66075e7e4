"""The export report: one ``Entry`` per artifact, ``ExportReport`` for the whole export.

The report is ``export_report.json`` in the output folder (keys are a public interface: add,
never rename), rewritten atomically after every artifact so it always describes what is in the
folder. Artifact paths are also stored relative to the folder (``file``), which is what readers
trust (``edge.artifacts``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.artifacts import ERROR, FAILED, NOT_VERIFIED, PASSED, REPORT_FILE, USABLE
from edge.fileio import atomic_write_text

__all__ = ["ERROR", "FAILED", "NOT_VERIFIED", "PASSED", "Entry", "ExportReport"]


@dataclass
class Entry:
    """One artifact's line in the report."""

    format: str
    quantize: str
    path: str = ""
    status: str = ERROR
    size_bytes: int = 0
    export_seconds: float = 0.0  # conversion (and, for QAT, its training)
    verify_seconds: float = 0.0
    verify_images: int = 0  # how many images the gate ran through the artifact
    agreement: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    drop_pts: float | None = None
    max_prob_diff: float | None = None
    mean_prob_diff: float | None = None
    changed: int | None = None  # held-out images whose top-1 differs from the Keras model's (edge.verify)
    changed_unsure: int | None = None  # ... where the Keras model was unsure (margin < edge.verify.UNSURE_MARGIN)
    changed_reference_wrong: int | None = None  # ... where the Keras model was wrong anyway
    verified_by: str = ""
    budget: dict[str, float | None] = field(default_factory=dict)
    reason: str = ""  # why it failed, in one line
    details: dict[str, Any] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # --int8-auto remedies tried
    file: str = ""  # the artifact's path relative to the report's folder

    @property
    def ok(self) -> bool:
        return self.status in USABLE


@dataclass
class ExportReport:
    source: str
    out_dir: str
    model_name: str
    held_out: str
    held_out_count: int
    reference_accuracy: float | None
    reference_runtime: str
    entries: list[Entry]
    skipped: list[str] = field(default_factory=list)  # requested kinds a format does not have
    options: dict[str, Any] = field(default_factory=dict)
    total_seconds: float = 0.0
    reference_seconds: float = 0.0  # the Keras reference pass on the held-out images
    run_id: str = ""  # identity of the source run (name@id), as the artifacts' metadata carries it
    source_run_relative: str = ""  # the source run directory relative to out_dir ("" for a bare .keras)
    source_run_absolute: str = ""
    planned: int = 0  # artifacts planned; entries fill in as they finish
    complete: bool = False  # False while the export is still running (or was interrupted)

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / REPORT_FILE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def write(self) -> Path:
        """Atomically (re)write ``export_report.json``."""
        out = Path(self.out_dir)
        for entry in self.entries:
            if entry.path:
                try:
                    entry.file = Path(entry.path).resolve().relative_to(out.resolve()).as_posix()
                except ValueError:
                    entry.file = ""
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2) + "\n")
        return self.path
