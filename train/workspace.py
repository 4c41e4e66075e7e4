"""Where a training run writes: choosing the run directory, continuing it, or replacing it aside.

* A new run gets a new folder, and edge's marker (``.edge-run.json``, the run's identity) is the
  first file written into it.
* An unfinished run with the same options is continued in place (running the command again).
* ``force`` replaces only a folder carrying edge's marker, never one that merely holds a
  ``checkpoints/`` or ``split/``. The new run is built in a hidden sibling folder and swapped in
  when it has finished, so a rerun that fails or is interrupted leaves the old run as it was.
* Nothing else is ever deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.fileio import ensure_writable_dir, os_reason, remove, sibling_dir, swap_in_dir
from edge.rundir import CHECKPOINT_DIR, RUN_MARKER, RunIdentity, is_edge_run, is_finished, read_marker, write_marker

CONFIG_FILE = "config.json"  # checkpoints/config.json: the options an unfinished run was started with


@dataclass
class Workspace:
    """``final`` is the run directory the user gets; ``work`` is where this run writes (``final``
    itself, or a hidden sibling when replacing a finished run)."""

    final: Path
    work: Path
    identity: RunIdentity
    replacing: bool = False

    @property
    def resumed(self) -> bool:
        return (self.work / CHECKPOINT_DIR / CONFIG_FILE).is_file()

    def commit(self) -> None:
        """The run has finished (``spec.json`` written): a replacement now takes the old run's place."""
        if self.replacing:
            try:
                swap_in_dir(self.work, self.final)
            except OSError as exc:
                raise EdgeError(f"Cannot move the finished run from {self.work} to {self.final} ({os_reason(exc)}).") from None

    def discard(self) -> None:
        """After a failure: remove a replacement that was being built (never the run it would replace)."""
        if self.replacing:
            remove(self.work)


def open_workspace(default_name: str, run_dir: str | Path | None, runs_root: str | Path, key: dict,
                   force: bool, resume: bool) -> Workspace:
    """The run directory to use; never overwrites a finished run without ``force``."""
    key_text = json.dumps(key, indent=1)
    if run_dir is None:
        base = Path(runs_root) / slug(default_name)
        candidate, n = base, 1
        while candidate.exists():
            if not force and _unfinished_with(candidate, key_text):
                break
            if force and is_edge_run(candidate):
                break
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        run_dir = candidate
    run = Path(run_dir).expanduser()
    if run.exists() and not run.is_dir():
        raise EdgeError(f"Run directory {run} exists and is not a directory.")
    if run.is_dir() and any(run.iterdir()):
        if force:
            if not is_edge_run(run):
                raise EdgeError(f"{run} was not written by edge (it has no {RUN_MARKER}); refusing to replace it "
                                "even with --force.")
            return _aside(run)
        if is_finished(run):
            raise EdgeError(f"{run} already holds a finished run; pass --force to replace it or choose another --run-dir.")
        if not _unfinished_with(run, key_text):
            if (run / CHECKPOINT_DIR / CONFIG_FILE).is_file():
                raise EdgeError(f"{run} holds an unfinished run with different options; use the same options to "
                                "resume it or --force to start over.")
            if not is_edge_run(run):
                raise EdgeError(f"{run} is not empty and is not an edge run directory; choose another --run-dir.")
        ensure_writable_dir(run, "run directory")
        identity = read_marker(run) or RunIdentity.new(run.absolute().name)  # an older edge's run has no marker
        return Workspace(run, run, identity)
    if resume:
        raise EdgeError(f"There is no unfinished run in {run} to resume.")
    ensure_writable_dir(run, "run directory")
    identity = RunIdentity.new(run.absolute().name)
    _mark(run, identity)
    return Workspace(run, run, identity)


def _aside(run: Path) -> Workspace:
    final = run.absolute()
    resolved = final.resolve()
    cwd = Path.cwd().resolve()
    if resolved in {Path(resolved.anchor), Path.home().resolve(), cwd, *cwd.parents}:
        raise EdgeError(f"Refusing to replace {run} (the root, home or working directory) even with --force.")
    try:
        work = sibling_dir(final, "new")
    except OSError as exc:
        raise EdgeError(f"Cannot create a folder beside {run} to build its replacement in ({os_reason(exc)}).") from None
    identity = RunIdentity.new(final.name)
    _mark(work, identity)
    return Workspace(run, work, identity, replacing=True)


def _mark(directory: Path, identity: RunIdentity) -> None:
    try:
        write_marker(directory, identity)
    except OSError as exc:
        raise EdgeError(f"Cannot write into the run directory {directory} ({os_reason(exc)}).") from None


def _unfinished_with(run: Path, key_text: str) -> bool:
    cfg = run / CHECKPOINT_DIR / CONFIG_FILE
    return not is_finished(run) and cfg.is_file() and cfg.read_text() == key_text


def slug(name: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return slug or "run"
