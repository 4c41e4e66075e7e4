"""``edge demo``: options -> ``edge.cli.demo.demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.app import app


@app.command()
def demo(
    out: Path = typer.Option(Path("edge-demo"), "--out", help="Directory for the demo's data, run and exports."),
    force: bool = typer.Option(False, "--force", help="Start over, replacing a previous demo in --out."),
) -> None:
    """Run the whole pipeline on a generated synthetic dataset (nothing is downloaded)."""
    from edge.cli.demo import demo as demo_api

    result = demo_api(out, force=force)
    if not result.ok:
        raise typer.Exit(1)
