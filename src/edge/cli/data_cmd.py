"""`edge data ...`: make a synthetic dataset or fetch the real tf_flowers photos.

Defaults are read from the API functions' signatures, and their values are checked there (the
CLI and the API refuse the same values with the same sentence).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import typer
from rich.table import Table

from edge.cli.app import app, examples
from edge.console import console
from edge.data.synth import FORMATS, synth

SYNTH_DEFAULTS = {name: p.default for name, p in inspect.signature(synth).parameters.items()}

data_app = typer.Typer(
    name="data",
    help="Get a dataset: draw a synthetic one, or download tf_flowers.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("synth", epilog=examples(
    "edge data synth shapes/ --classes 5 --per-class 60",
    "edge data synth shapes/ --classes 10 --image-size 128 --format png --seed 1",
))
def synth_command(
    out: Path = typer.Argument(..., help="Directory to write the class-folder tree into (must be empty or new)."),
    classes: int = typer.Option(SYNTH_DEFAULTS["classes"], "--classes", help="Number of classes (shapes, then shape x colour)."),
    per_class: int = typer.Option(SYNTH_DEFAULTS["per_class"], "--per-class", help="Images per class."),
    image_size: int = typer.Option(SYNTH_DEFAULTS["image_size"], "--image-size", help="Width and height of every image in pixels."),
    seed: int = typer.Option(SYNTH_DEFAULTS["seed"], "--seed", help="Random seed; the same seed writes byte-identical files."),
    image_format: str = typer.Option(SYNTH_DEFAULTS["image_format"], "--format", help=f"File format: {', '.join(FORMATS)}."),
    force: bool = typer.Option(
        SYNTH_DEFAULTS["force"], "--force",
        help="Replace OUT if it is a dataset edge data synth drew (the old one stays until the new one is complete).",
    ),
) -> None:
    """Draw a synthetic image-classification dataset (shapes, colours, textures) as class folders."""
    result = synth(out, classes, per_class, image_size, seed, image_format, force)
    _print_summary(f"Synthetic dataset ({image_size}x{image_size} {image_format.lower()}, seed {seed})", result)


@data_app.command("flowers", epilog=examples(
    "edge data flowers flowers/",
    "edge data flowers flowers/ --url ~/Downloads/flower_photos.tgz    # an archive already on disk",
))
def flowers_command(
    dest: Path = typer.Argument(..., help="Directory to create with one sub-folder per flower class."),
    url: str = typer.Option(
        None, "--url", help="Archive URL or local .tgz path (default: the official flower_photos.tgz)."
    ),
    sha256: str = typer.Option(
        None, "--sha256", help="Expected SHA-256 of the archive (default: the official one, unless --url is given)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace DEST if it is not empty."),
) -> None:
    """Download the tf_flowers photos (flower_photos.tgz), check them and extract them safely."""
    from edge.data.flowers import FLOWERS_SHA256, FLOWERS_URL, download_flowers

    expected = sha256 if sha256 or url else FLOWERS_SHA256
    result = download_flowers(dest, url=url or FLOWERS_URL, sha256=expected, force=force)
    if result.checksum_verified:
        console.print(f"SHA-256 verified: {result.sha256}", highlight=False)
    else:
        console.print("[yellow]No checksum given: only the folder structure was checked.[/]")
    _print_summary("tf_flowers photos", result)


def _print_summary(what: str, result) -> None:
    """Per-class image counts, where the data is, and the next command to run."""
    table = Table()
    table.add_column("class")
    table.add_column("images", justify="right")
    for label, count in result.counts.items():
        table.add_row(label, str(count))
    table.add_row("[bold]total", f"[bold]{result.total}")
    console.print(table)
    console.print(f"{what}: {len(result.labels)} classes in [bold]{result.out_dir}[/]", highlight=False)
    console.print(f"Train on it with: [bold]edge train {result.out_dir}[/]", highlight=False)
