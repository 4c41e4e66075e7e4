"""``edge predict``: options -> ``edge.predict.predict``; a table of image -> top-k, CSV and JSON.

Exit codes: 0 when every image was classified, 1 when some could not be read (they are named),
2 for a user error (one sentence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app, epilog, examples, json_option, quiet_option, setup_output, verbose_option, write_json
from edge.predict import DEFAULT_TOP_K

EPILOG = epilog(
    "MODEL is any artifact edge makes: .tflite (LiteRT), .onnx (onnxruntime), .mlpackage (Core ML; the MIL "
    "reference executor off macOS), .keras with its spec.json, or a run directory (its model.keras). Labels, input "
    "size and normalization come from the model's own metadata; images are decoded as everywhere in edge (EXIF "
    "orientation, HEIC/HEIF) and stretched to the input size. A folder contributes every image inside it. "
    "--labels, --mean and --std are for models without edge metadata.",
    examples(
        "edge predict runs/flowers/export/flowers_int8.tflite photo.heic",
        "edge predict runs/flowers/export/flowers_fp16.mlpackage photos/ --top-k 3 --csv predictions.csv",
        "edge predict runs/flowers photos/ --json - | jq '.images[0].predictions[0]'",
        "edge predict mobilenet.tflite cat.jpg --labels labels.txt --mean 127.5 --std 127.5",
    ),
)


@app.command(epilog=EPILOG)
def predict(
    model: Path = typer.Argument(..., help="A model file edge made (.tflite, .onnx, .mlpackage, .keras) or a run directory."),
    images: list[Path] = typer.Argument(..., metavar="IMAGE_OR_DIR...", help="Image files and/or folders of images."),
    top_k: int = typer.Option(DEFAULT_TOP_K, "--top-k", "-k", help="Classes shown per image, best first."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write one row per image (path, label_1, score_1, ...) to this CSV file."),
    json_target: Optional[str] = json_option("the predictions"),
    labels: Optional[str] = typer.Option(None, "--labels", help="For models without edge metadata: labels file (one per line) or comma list."),
    mean: Optional[str] = typer.Option(None, "--mean", help="For models without metadata and float input: mean in pixel units (one or three numbers)."),
    std: Optional[str] = typer.Option(None, "--std", help="For models without metadata and float input: std in pixel units (one or three numbers)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Runtime threads (default: the runtime's own choice)."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Classify photos with a trained or exported model: the top-k labels of each image."""
    setup_output(quiet, verbose, json_target)
    from edge.console import console
    from edge.console import result as print_result
    from edge.predict import predict as predict_api
    from edge.runtimes.foreign import parse_labels, parse_triple

    with console.status(f"Classifying with {model.name}..."):
        result = predict_api(model, images, top_k=top_k, labels=parse_labels(labels), mean=parse_triple(mean, "--mean"),
                             std=parse_triple(std, "--std"), threads=threads)
    for text in result.warnings:
        console.print(f"[yellow]warning:[/] {text}", highlight=False)
    console.print(f"[dim]{Path(result.model).name}: {result.format} on {result.runtime}, "
                  f"{len(result.labels)} classes, {result.input_size[0]}x{result.input_size[1]} input[/]", highlight=False)
    if result.images:
        print_result(predictions_table(result, console.width))
    for skipped in result.skipped:
        print_result(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}", highlight=False)
    if csv is not None:
        from edge.fileio import atomic_write_text

        csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(csv, result.to_csv())
        console.print(f"[dim]wrote {csv}[/]", highlight=False)
    written = write_json(json_target, result.to_json())
    if written is not None:
        console.print(f"[dim]wrote {written}[/]", highlight=False)
    if result.skipped:
        raise typer.Exit(1)


def predictions_table(result, width: int):
    """image -> top-k as a table that fits ``width`` (one block per image when it does not)."""
    from edge.tables import Field, fit

    paths = [Path(image.path) for image in result.images]
    names = _display_names(paths)
    fields = [Field("image", "left")] + [Field(f"top-{rank}", "left") for rank in range(1, result.top_k + 1)]
    rows = []
    for name, image in zip(names, result.images):
        row = {"image": name}
        for rank, p in enumerate(image.predictions, 1):
            row[f"top-{rank}"] = f"{p.label} {p.score:.1%}"
        rows.append(row)
    return fit(rows, fields, width)


def _display_names(paths: list[Path]) -> list[str]:
    """Paths relative to the current folder when they are inside it, else as given."""
    out = []
    cwd = Path.cwd().resolve()
    for path in paths:
        try:
            out.append(str(path.resolve().relative_to(cwd)))
        except ValueError:
            out.append(str(path))
    return out
