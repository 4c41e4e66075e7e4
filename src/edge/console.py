"""Shared rich consoles and progress-bar factory for the CLI and the long-running API calls."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console()
err_console = Console(stderr=True)


def progress(transient: bool = False) -> Progress:
    """A progress bar with count, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
    )


@contextlib.contextmanager
def quiet_status(message: str = "") -> Iterator[None]:
    """A stand-in for ``console.status`` that shows nothing (``quiet=True`` callers)."""
    yield
