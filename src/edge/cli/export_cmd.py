"""``edge export``: options -> ``edge.export.export``; prints the verification table.

Exit codes: 0 when every artifact passed its gate (or was written unverified), 1 when any
artifact failed its budget or its converter failed, 2 for a user error (one sentence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.cli.app import app


def _combinations() -> str:
    """One line per format: its quantization kinds (default ones marked with *)."""
    from edge.errors import EdgeError
    from edge.export import formats

    lines = []
    for name in formats.names():
        try:
            fmt = formats.get(name)
        except EdgeError as exc:
            lines.append(f"{name}: {exc}")
            continue
        kinds = ", ".join(f"{k}*" if k in fmt.default_quantize else k for k in fmt.quantize_kinds)
        lines.append(f"{name} ({fmt.suffix}): {kinds}")
    return "\n\n".join(lines)


EPILOG = (
    "Formats and quantization kinds (* = default when --quantize is not given):\n\n"
    + _combinations()
    + "\n\nEvery artifact takes raw RGB pixels (0..255) and outputs class probabilities; labels and "
    "preprocessing travel in its metadata. Budgets: fp32 agreement >= 99.5% and max prob diff <= 1e-3; "
    "fp16 agreement >= 99%; int8/dynamic/compressed accuracy drop <= --max-drop points."
)


def _split(value: Optional[str]) -> list[str]:
    return [item.strip().lower() for item in (value or "").split(",") if item.strip()]


@app.command(no_args_is_help=True, epilog=EPILOG)
def export(
    source: Path = typer.Argument(..., help="A run directory from edge train, or a .keras model with spec.json beside it."),
    format: str = typer.Option("tflite", "--format", "-f", help="Comma list of tflite, onnx, coreml."),
    quantize: Optional[str] = typer.Option(None, "--quantize", "-q", help="Comma list of fp32, fp16, dynamic, int8 (applied where the format has it; Core ML also palettize4/6/8). Default: per format, see below."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: RUN_DIR/export)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Class-folder images to verify on (default: the run's held-out split)."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Largest accuracy drop in points allowed for int8/dynamic/compressed artifacts."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing artifacts."),
    int8_io: str = typer.Option("uint8", "--int8-io", help="Input/output type of full-int8 TFLite files: uint8 (raw pixels) or int8 (pixel - 128)."),
    calibration_count: int = typer.Option(200, "--calibration-count", help="Representative images from the training split for int8 calibration."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="ONNX int8: per-channel weight scales."),
    int8_auto: bool = typer.Option(False, "--int8-auto", help="When int8 misses the budget, try more calibration, per-channel, float fallback for the worst layers, then QAT."),
    qat: bool = typer.Option(False, "--qat", help="TFLite int8 via quantization-aware training on the training split (tensorflow-model-optimization)."),
    qat_epochs: int = typer.Option(2, "--qat-epochs", help="Epochs of quantization-aware fine-tuning."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Run every artifact against the Keras model (the gate)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for the runtimes during verification."),
    ios_demo: Optional[Path] = typer.Option(None, "--ios-demo", help="Also install the verified Core ML classifier (fp16 preferred) into this iOS demo app folder, e.g. ios_demo/."),
) -> None:
    """Convert a trained model to TFLite / ONNX / Core ML and verify each artifact against it."""
    from edge.console import console
    from edge.errors import EdgeError
    from edge.export import export as export_api

    if int8_io not in ("uint8", "int8"):
        raise EdgeError(f"--int8-io must be uint8 or int8, not '{int8_io}'.")
    report = export_api(
        source, formats=_split(format), quantize=_split(quantize) or None, out=out, data=data, max_drop=max_drop,
        force=force, verify=verify, int8_io=int8_io, calibration_count=calibration_count, opset=opset,
        per_channel=per_channel, int8_auto=int8_auto, qat=qat, qat_epochs=qat_epochs, threads=threads,
    )
    console.print(report_table(report))
    for note in report.skipped:
        console.print(f"[dim]skipped: {note}[/]")
    passed = sum(e.ok for e in report.entries)
    console.print(f"{passed}/{len(report.entries)} artifacts ok in {report.total_seconds:.0f} s; report: {report.path}")
    for entry in report.entries:
        if not entry.ok:
            console.print(f"[red]{entry.format} {entry.quantize} {entry.status}:[/] {entry.reason}", highlight=False)
    if ios_demo is not None:
        from edge.cli.ios_cmd import print_install_summary
        from edge.ios_demo import install_from_artifacts

        installed = install_from_artifacts(report.entries, ios_demo)
        if installed is None:
            raise EdgeError("--ios-demo needs a Core ML artifact that passed verification; add coreml to --format.")
        print_install_summary(installed)
    if not report.ok:
        raise typer.Exit(1)


def report_table(report):
    """A rich table of the report's entries."""
    from rich.table import Table

    ref = f"{report.reference_accuracy:.2%}" if report.reference_accuracy is not None else "-"
    table = Table(title=f"{report.model_name}: verified on {report.held_out_count} held-out images (Keras accuracy {ref})")
    for column in ("artifact", "status", "MB", "accuracy", "drop", "agree", "max |dp|", "secs"):
        table.add_column(column, justify="left" if column in ("artifact", "status") else "right")
    colours = {"passed": "green", "failed": "red", "error": "red", "not verified": "yellow"}
    for e in report.entries:
        name = Path(e.path).name if e.ok and e.path else f"{e.format} {e.quantize}"
        table.add_row(
            name, f"[{colours.get(e.status, 'white')}]{e.status}[/]", _size(e.size_bytes), _pct(e.accuracy),
            _num(e.drop_pts, "+.2f"), _pct(e.agreement), _num(e.max_prob_diff, ".1e"), f"{e.export_seconds:.1f}",
        )
    return table


def _size(n: int) -> str:
    return f"{n / 1e6:.2f}" if n else "-"


def _pct(value) -> str:
    return f"{value:.2%}" if value is not None else "-"


def _num(value, fmt: str) -> str:
    return format(value, fmt) if value is not None else "-"
