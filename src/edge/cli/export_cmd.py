"""``edge export``: options -> ``edge.export.export``; prints the verification table.

Exit codes: 0 when every artifact passed its gate (or was written unverified), 1 when any
artifact failed its budget or its converter failed, 2 for a user error (one sentence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge import formats
from edge.cli.app import app, epilog, examples, json_option, quiet_option, setup_output, verbose_option, write_json
from edge.export.plan import ExportSettings
from edge.tables import Field

DEFAULTS = ExportSettings()


def _combinations() -> str:
    """One line per format: its quantization kinds (default ones marked with *)."""
    from edge.errors import EdgeError

    lines = []
    for name in formats.REGISTRY:
        try:
            fmt = formats.get(name)
        except EdgeError as exc:
            lines.append(f"{name}: {exc}")
            continue
        if not fmt.exportable:
            continue
        kinds = ", ".join(f"{k}*" if k in fmt.default_quantize else k for k in fmt.quantize_kinds)
        lines.append(f"{fmt.name} ({fmt.suffix}, verified by {fmt.verified_by}): {kinds}")
    return "\n\n".join(lines)


EPILOG = epilog(
    "Formats and quantization kinds (* = default when --quantize is not given):",
    _combinations(),
    "Every artifact takes raw RGB pixels (0..255) and outputs class probabilities; labels and "
    "preprocessing travel in its metadata. Budgets: fp32 agreement >= 99.5% and max prob diff <= 1e-3; "
    "fp16 agreement >= 99%; int8/dynamic/compressed accuracy drop <= --max-drop points. Without SOURCE, "
    "the most recently finished run under ./runs is exported (edge says which).",
    examples(
        "edge export                                   # the latest run, default formats",
        "edge export --format tflite,coreml            # the latest run under ./runs",
        "edge export runs/flowers -f tflite,onnx,coreml --quantize fp16,int8",
        "edge export runs/flowers --int8-auto --max-drop 0.5",
        "edge export runs/flowers --json - | jq '.entries[].status'",
    ),
)


@app.command(epilog=EPILOG)
def export(
    source: Optional[Path] = typer.Argument(None, help="A run directory from edge train, or a .keras model with spec.json beside it (default: the most recently finished run under ./runs)."),
    format: str = typer.Option(",".join(DEFAULTS.formats), "--format", "-f", help="Comma list of " + ", ".join(formats.names()) + "."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="Comma list of fp32, fp16, dynamic, int8 (applied where the format has it; Core ML also palettize4/6/8). Default: per format, see below."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: RUN_DIR/export)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Class-folder images to verify on (default: the run's held-out split)."),
    max_drop: float = typer.Option(DEFAULTS.max_drop, "--max-drop", help="Largest accuracy drop in points allowed for int8/dynamic/compressed artifacts."),
    force: bool = typer.Option(DEFAULTS.force, "--force", help="Overwrite existing artifacts."),
    int8_io: str = typer.Option(DEFAULTS.int8_io, "--int8-io", help="Input/output type of full-int8 TFLite files: uint8 = raw pixels, what MediaPipe Tasks and other raw-pixel consumers feed (they refuse int8 input); int8 = pixel - 128, only when the app feeds that itself (about 10% faster in LiteRT)."),
    calibration_count: int = typer.Option(DEFAULTS.calibration_count, "--calibration-count", help="Representative images from the training split for int8 calibration."),
    opset: int = typer.Option(DEFAULTS.opset, "--opset", help="ONNX opset."),
    per_channel: bool = typer.Option(DEFAULTS.per_channel, "--per-channel/--per-tensor", help="ONNX int8: per-channel weight scales."),
    int8_auto: bool = typer.Option(DEFAULTS.int8_auto, "--int8-auto", help="When int8 misses the budget, try more calibration, per-channel, QAT, then float for the worst layers."),
    qat: bool = typer.Option(DEFAULTS.qat, "--qat", help="int8 via quantization-aware training on the training split, for formats that offer it (TFLite)."),
    qat_epochs: int = typer.Option(DEFAULTS.qat_epochs, "--qat-epochs", help="Epochs of quantization-aware fine-tuning."),
    verify: bool = typer.Option(DEFAULTS.verify, "--verify/--no-verify", help="Run every artifact against the Keras model (the gate)."),
    threads: Optional[int] = typer.Option(DEFAULTS.threads, "--threads", help="Threads for the runtimes during verification."),
    ios_demo: Optional[Path] = typer.Option(None, "--ios-demo", help="Also install the verified Core ML classifier (fp16 preferred) into this iOS demo app folder, e.g. ios_demo/."),
    coreml_target: str = typer.Option(DEFAULTS.coreml_target, "--coreml-target", help="Core ML deployment target: ios16, ios17 or ios18 (int4 and grouped palettes need ios18)."),
    author: str = typer.Option(DEFAULTS.author, "--author", help="Author shown in Xcode for Core ML models (default: the user running edge)."),
    license: str = typer.Option(DEFAULTS.license, "--license", help="License shown in Xcode for Core ML models."),
    model_version: str = typer.Option(DEFAULTS.model_version, "--model-version", help="Model version written into the artifacts (default: the spec's)."),
    json_target: Optional[str] = json_option("the export report (export_report.json)"),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Convert a trained model to TFLite / ONNX / Core ML and verify each artifact against it."""
    setup_output(quiet, verbose, json_target)
    from edge.console import console, progress, result
    from edge.errors import EdgeError
    from edge.export import export as export_api

    if source is None:
        from edge.discover import latest_run

        found = latest_run()
        console.print(found.describe(), highlight=False)
        source = found.path

    with progress() as bar:
        overall = bar.add_task("artifacts", total=None, info="")
        inner = bar.add_task("reference", total=None, info="", visible=False)

        def on_progress(what: str, done: int, total: int) -> None:
            bar.update(inner, description=what, completed=done, total=total or None, visible=True)

        def on_entry(entry) -> None:
            bar.update(inner, visible=False)
            bar.advance(overall)
            bar.console.print(entry_line(entry, bar.console.width), highlight=False)

        report = export_api(
            source, formats=format, quantize=quantize or None, out=out, data=data, max_drop=max_drop,
            force=force, verify=verify, int8_io=int8_io, calibration_count=calibration_count, opset=opset,
            per_channel=per_channel, int8_auto=int8_auto, qat=qat, qat_epochs=qat_epochs, threads=threads,
            coreml_target=coreml_target, author=author, license=license, model_version=model_version,
            quiet=True, on_start=lambda n: bar.update(overall, total=n), on_progress=on_progress, on_entry=on_entry,
        )
    console.print(report_table(report, console.width))
    for note in report.skipped:
        console.print(f"[dim]skipped: {note}[/]", highlight=False)
    passed = sum(e.ok for e in report.entries)
    result(f"{passed}/{len(report.entries)} artifacts ok in {report.total_seconds:.0f} s; report: {report.path}",
           highlight=False)
    for entry in report.entries:
        if not entry.ok:
            result(f"[red]{entry.format} {entry.quantize} {entry.status}:[/] {entry.reason}", highlight=False)
    if ios_demo is not None:
        from edge.cli.ios_cmd import print_install_summary
        from edge.ios_demo import install_from_artifacts

        installed = install_from_artifacts(report.entries, ios_demo)
        if installed is None:
            raise EdgeError("--ios-demo needs a Core ML artifact that passed verification; add coreml to --format.")
        print_install_summary(installed)
    if json_target is not None:
        import json

        write_json(json_target, json.dumps(report.to_dict(), indent=2))
    if not report.ok:
        raise typer.Exit(1)


def entry_line(entry, width: int | None = None):
    """One artifact's result as soon as it is verified (the full table follows at the end); wrapped
    between facts only, so no number is split across lines."""
    from edge.artifacts import PASSED
    from edge.console import console
    from edge.tables import wrapped

    mark = "[green]ok[/]" if entry.status == PASSED else f"[yellow]{entry.status}[/]" if entry.ok else "[red]FAIL[/]"
    name = Path(entry.path).name if entry.path else f"{entry.format} {entry.quantize}"
    facts = [f"{entry.size_bytes / 1e6:.2f} MB" if entry.size_bytes else "",
             f"agree {entry.agreement:.1%}" if entry.agreement is not None else "", changed_answers(entry),
             f"drop {entry.drop_pts:+.2f}" if entry.drop_pts is not None else "",
             f"convert {entry.export_seconds:.1f} s", f"verify {entry.verify_seconds:.1f} s"]
    return wrapped(f"{mark} {name}:", [f for f in facts if f], width or console.width)


def changed_answers(entry) -> str:
    """"4 answers changed (3 where Keras was unsure)": edge.verify's breakdown ("" when none changed)."""
    if not entry.changed:
        return ""
    if entry.changed == 1:
        return f"1 answer changed (Keras was {'unsure' if entry.changed_unsure else 'sure'})"
    if entry.changed_unsure:
        some = "all" if entry.changed_unsure == entry.changed else str(entry.changed_unsure)
        return f"{entry.changed} answers changed ({some} where Keras was unsure)"
    return f"{entry.changed} answers changed (Keras was sure of each)"


REPORT_FIELDS = (
    Field("artifact", "left"), Field("status", "left"), Field("MB"), Field("accuracy"), Field("drop"),
    Field("agree"), Field("max |dp|", optional=True), Field("secs", optional=True),
)


def report_table(report, width: int | None = None):
    """The report's entries as a table that fits ``width`` columns (default: the console's)."""
    from edge.artifacts import ERROR, FAILED, NOT_VERIFIED, PASSED
    from edge.console import console
    from edge.tables import fit

    ref = f"{report.reference_accuracy:.2%}" if report.reference_accuracy is not None else "-"
    colours = {PASSED: "green", FAILED: "red", ERROR: "red", NOT_VERIFIED: "yellow"}
    rows = []
    for e in report.entries:
        name = Path(e.path).name if e.ok and e.path else f"{e.format} {e.quantize}"
        rows.append({
            "artifact": name, "status": f"[{colours.get(e.status, 'white')}]{e.status}[/]", "MB": _size(e.size_bytes),
            "accuracy": _pct(e.accuracy), "drop": _num(e.drop_pts, "+.2f"), "agree": _pct(e.agreement),
            "max |dp|": _num(e.max_prob_diff, ".1e"), "secs": f"{e.export_seconds:.1f}",
        })
    title = f"{report.model_name}: verified on {report.held_out_count} held-out images (Keras accuracy {ref})"
    return fit(rows, REPORT_FIELDS, width or console.width, title=title)


def _size(n: int) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.2f}" if n >= 10_000 else f"{n / 1e6:.3f}"  # a tiny model is not "0.00" MB


def _pct(value) -> str:
    return f"{value:.2%}" if value is not None else "-"


def _num(value, fmt: str) -> str:
    return format(value, fmt) if value is not None else "-"
