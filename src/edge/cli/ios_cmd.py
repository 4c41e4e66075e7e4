"""``edge ios``: put an exported Core ML model into the iOS demo app; regenerate its contract file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edge.cli.app import app, examples
from edge.console import console

ios_app = typer.Typer(
    help="The iOS demo app (ios_demo/): install a Core ML model into it, regenerate its Swift contract.",
    no_args_is_help=True,
)
app.add_typer(ios_app, name="ios")

APP_HELP = "The ios_demo folder of an edge checkout (default: ./ios_demo, else the one beside this edge)."


@ios_app.command("install", epilog=examples(
    "edge ios install runs/flowers/export/flowers_fp16.mlpackage",
    "edge ios install runs/flowers/export --app ~/src/edge/ios_demo",
))
def install(
    model: Path = typer.Argument(..., help="A .mlpackage from `edge export --format coreml`, or a folder holding one."),
    app_dir: Path = typer.Option(None, "--app", help=APP_HELP, show_default=False),
) -> None:
    """Copy a Core ML classifier into the app as EdgeDemo/Models/EdgeClassifier.mlpackage.

    The model is checked first: it must offer everything the app reads (image input, classifier outputs, class labels, edge metadata). Rebuild the app in Xcode afterwards.
    """
    from edge.ios_demo import install as install_model

    with console.status("Checking the model…"):
        result = install_model(model, app_dir)
    print_install_summary(result)


def print_install_summary(result) -> None:
    """What was installed where, and the next step (also used by `edge export --ios-demo`)."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("model", f"{result.model_name} v{result.model_version}")
    table.add_row("labels", f"{len(result.labels)}: {', '.join(result.labels[:8])}{' …' if len(result.labels) > 8 else ''}")
    table.add_row("input", f"{result.input_size[1]}×{result.input_size[0]} RGB")
    table.add_row("source run", result.source_run or "-")
    table.add_row("size", f"{result.size_bytes / 1e6:.1f} MB")
    if result.replaced:
        table.add_row("removed", ", ".join(result.replaced))
    console.print(f"[green]Installed[/] {result.source} → {result.destination}")
    console.print(table)
    project = result.app_dir / "EdgeDemo.xcodeproj"
    console.print(f"Next: open {project} in Xcode, choose your team under Signing & Capabilities, and run.")


@ios_app.command("contract", epilog=examples("edge ios contract", "edge ios contract --check    # in CI"))
def contract(
    app_dir: Path = typer.Option(None, "--app", help=APP_HELP, show_default=False),
    check: bool = typer.Option(False, "--check", help="Only check; exit 1 when ModelContract.swift is stale."),
) -> None:
    """Regenerate EdgeDemo/ModelContract.swift (metadata keys, Core ML names) from edge.contract."""
    from edge.ios_demo import contract as write_contract

    path, current = write_contract(app_dir, check=check)
    if check:
        if not current:
            console.print(f"[red]{path} is stale[/]; run `edge ios contract`.")
            raise typer.Exit(1)
        console.print(f"{path} is up to date.")
    else:
        console.print(f"{path} {'already up to date' if current else '[green]written[/]'}.")
