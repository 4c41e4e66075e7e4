"""What "the latest" means when a command is given no run or model: ``edge export``, ``edge bench``.

The design card's commands are typed without paths (``edge train flowers/ && edge export
--format tflite,coreml && edge bench``): export takes the most recently *finished* run under
``./runs`` (finished = ``edge.rundir.is_finished``; when = the time its ``spec.json`` was written,
the last file training writes) and bench the newest export folder (``RUN/export`` holding an
``export_report.json``; when = that report's last write). Both refuse with one sentence when
there is nothing to take, or when the two newest finished within the same second, since then
"the latest" would be a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge.artifacts import DEFAULT_EXPORT_DIR, REPORT_FILE
from edge.errors import EdgeError
from edge.rundir import is_finished
from edge.spec import SPEC_FILE

RUNS_ROOT = Path("runs")


@dataclass(frozen=True)
class Found:
    """The folder chosen, when it was finished (epoch seconds), and how the choice reads on screen."""

    path: Path
    finished: float
    what: str  # "run" or "export folder"

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.finished).strftime("%Y-%m-%d %H:%M:%S")
        return f"Using the most recent {self.what}: {self.path} (finished {when})."


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _children(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _newest(candidates: list[tuple[Path, float]], what: str, root: Path, hint: str) -> Found:
    if not candidates:
        raise EdgeError(f"No {what} under {root}/ to take; {hint}.")
    candidates.sort(key=lambda item: item[1], reverse=True)
    (path, when), rest = candidates[0], candidates[1:]
    if rest and math.floor(rest[0][1]) == math.floor(when):
        raise EdgeError(f"{path} and {rest[0][0]} finished within the same second, so the latest {what} is "
                        f"ambiguous; name the one you mean.")
    return Found(path, when, what)


def latest_run(root: str | Path = RUNS_ROOT) -> Found:
    """The most recently finished run directory under ``root`` (``./runs``)."""
    root = Path(root)
    found = []
    for child in _children(root):
        if is_finished(child):
            when = _mtime(child / SPEC_FILE)
            if when is not None:
                found.append((child, when))
    return _newest(found, "finished run", root, "train one with `edge train DATA`, or name a run directory")


def latest_export(root: str | Path = RUNS_ROOT) -> Found:
    """The newest export folder (``RUN/export`` with an ``export_report.json``) under ``root``."""
    root = Path(root)
    found = []
    for child in _children(root):
        report = child / DEFAULT_EXPORT_DIR / REPORT_FILE
        when = _mtime(report) if report.is_file() else None
        if when is not None:
            found.append((child / DEFAULT_EXPORT_DIR, when))
    return _newest(found, "export folder", root, "export a run with `edge export RUN_DIR`, or name the models")
