"""``edge demo``: options -> ``edge.cli.demo.demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.app import app
from edge.cli.demo import DEMO_PER_CLASS, DEMO_TRAIN


@app.command()
def demo(
    out: Path = typer.Option(Path("edge-demo"), "--out", help="Directory for the demo's data, run and exports."),
    force: bool = typer.Option(False, "--force", help="Start over, replacing a previous demo in --out."),
    per_class: int = typer.Option(DEMO_PER_CLASS, "--per-class", help="Synthetic images per class."),
    epochs: int = typer.Option(DEMO_TRAIN["epochs"], "--epochs", help="Training epochs of the small demo model."),
) -> None:
    """Run the whole pipeline on a generated synthetic dataset (nothing is downloaded).

    Examples: edge demo; edge demo --out /tmp/try --per-class 30 --epochs 3 (a quick smoke run).
    """
    from edge.cli.demo import demo as demo_api

    result = demo_api(out, force=force, per_class=per_class, epochs=epochs)
    if not result.ok:
        raise typer.Exit(1)
