"""The export directory contract: ``export_report.json``, its statuses, and what a folder holds.

``edge export`` writes the report (rewritten atomically after every artifact, so it always
describes what is in the folder); ``edge bench``, ``edge predict`` and the demo apps read it
through ``listed_artifacts``, which resolves each artifact's path relative to the report's folder
and never follows a path out of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError

REPORT_FILE = "export_report.json"
REJECTED_DIR = "rejected"  # artifacts over budget, kept for inspection
DEFAULT_EXPORT_DIR = "export"  # inside the run directory

# Status of one report entry.
PASSED = "passed"
FAILED = "failed"  # over budget: the file is in rejected/, not under its final name
ERROR = "error"  # the converter or the runtime failed; no file
NOT_VERIFIED = "not verified"  # written but not executed (verification off, or no runtime here)
USABLE = (PASSED, NOT_VERIFIED)  # statuses whose artifact sits under its final name


@dataclass(frozen=True)
class Listed:
    """One usable artifact named by an export report."""

    path: Path
    format: str
    quantize: str
    status: str


def read_report(export_dir: Path) -> dict | None:
    """The parsed ``export_report.json`` of ``export_dir`` (None when there is none)."""
    report = Path(export_dir) / REPORT_FILE
    if not report.is_file():
        return None
    try:
        return json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeError(f"{report} is not a readable export report ({exc}).") from exc


def inside(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` when it stays inside ``folder`` (no ``..``, no absolute path), else None."""
    if not relative:
        return None
    candidate = Path(relative)
    if candidate.is_absolute():
        candidate = Path(candidate.name)  # reports before 0.2 stored paths as given; only the name is trusted
    root = Path(folder).resolve()
    resolved = (root / candidate).resolve()
    return resolved if resolved == root or root in resolved.parents else None


def listed_artifacts(export_dir: Path) -> list[Listed]:
    """The usable artifacts the folder's report names that exist in that folder (report order)."""
    data = read_report(export_dir)
    if not data:
        return []
    found = []
    for entry in data.get("entries", []):
        if entry.get("status") not in USABLE:
            continue
        path = inside(Path(export_dir), str(entry.get("file") or entry.get("path") or ""))
        if path is not None and path.exists():
            found.append(Listed(path, str(entry.get("format", "")), str(entry.get("quantize", "")), entry["status"]))
    return found


def source_run(export_dir: Path) -> Path | None:
    """The run directory an export folder came from, when its report names one that still exists."""
    data = read_report(export_dir) or {}
    for key in ("source_run_relative", "source_run_absolute", "source"):
        value = data.get(key)
        if not value:
            continue
        path = Path(value)
        if not path.is_absolute() and key == "source_run_relative":
            path = Path(os.path.normpath(Path(export_dir) / path))
        if path.is_dir():
            return path
    return None
