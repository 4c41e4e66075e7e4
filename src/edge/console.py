"""Shared rich consoles and progress-bar factory for the CLI and the long-running API calls.

``console`` carries everything edge says (progress, tables, notes), ``err_console`` errors.
``set_output`` adapts them to the command line's flags:

* ``quiet``: ``console`` prints nothing; ``result`` still prints the final result.
* ``json_stdout`` (``--json -``): stdout holds the JSON document and nothing else, so everything
  ``console`` says goes to stderr instead.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

console = Console()
err_console = Console(stderr=True)
_mode = {"quiet": False, "json_stdout": False}


def set_output(quiet: bool = False, json_stdout: bool = False) -> None:
    """Route and mute ``console`` for ``-q/--quiet`` and ``--json -`` (see the module docstring)."""
    _mode.update(quiet=quiet, json_stdout=json_stdout)
    console.quiet = quiet
    console.stderr = json_stdout  # a Console without an explicit file writes to sys.stdout or sys.stderr
    console.file = None  # type: ignore[assignment]  (rich: None means "the current sys.stdout/stderr")


def is_quiet() -> bool:
    return bool(_mode["quiet"])


def result(*objects, **kwargs) -> None:
    """Print the final result of a command: shown even with ``-q`` (never on stdout with ``--json -``)."""
    muted = console.quiet
    console.quiet = False
    try:
        console.print(*objects, **kwargs)
    finally:
        console.quiet = muted


def emit_json(text: str) -> None:
    """Write a JSON document to stdout, alone (``--json -``)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def progress(transient: bool = False) -> Progress:
    """A progress bar with count, elapsed and remaining time.

    Everything but the free-text ``info`` column keeps its width (no wrapping), and ``info`` folds
    onto a second line when the terminal is narrow, so at 80 columns (or in a log without a TTY)
    the bar reads ``scratch ━━━━ 12/12 0:00:19 0:00:00 loss 1.542 ...`` rather than ``2… … 0…``.
    """
    return Progress(
        TextColumn("[bold blue]{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[info]}", table_column=Column(overflow="fold")),
        console=console,
        transient=transient,
        disable=is_quiet(),
    )


@contextlib.contextmanager
def quiet_status(message: str = "") -> Iterator[None]:
    """A stand-in for ``console.status`` that shows nothing (``quiet=True`` callers)."""
    yield
