"""``edge bench``: options -> ``edge.bench.bench``; prints the table and writes json/md/png.

Exit codes: 0 when every model is within ``--max-drop`` (or none was given), 1 when one dropped
more, 2 for a user error (one sentence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edge.bench.runner import BenchSettings
from edge.cli.app import (
    app,
    epilog,
    examples,
    json_option,
    json_to_stdout,
    quiet_option,
    setup_output,
    verbose_option,
    write_json,
)
from edge.data.resize import REFERENCE, VARIANTS
from edge.runtimes import mediapipe as mediapipe_runtime

DEFAULTS = BenchSettings()

EPILOG = epilog(
    "MODEL is a .tflite, .onnx, .mlpackage or .keras file, or an export directory (all its artifacts); without "
    "MODEL, the newest export folder under ./runs (RUN/export with an export_report.json). "
    "Runtimes: LiteRT with XNNPACK (TFLite), onnxruntime CPU (ONNX), TensorFlow tf.function (Keras); Core ML "
    "runs through the MIL reference executor off macOS (accuracy only, latency n/a). Data: --data class "
    "folders, --run a run's held-out split, or by default the held-out split of the run the model came from. "
    "Only the runtime call is timed: decoding, resizing and input quantization happen before the timed loop.",
    examples(
        "edge bench                                    # the newest export under ./runs",
        "edge bench runs/flowers/export --threads 1,2 --max-drop 1",
        "edge bench runs/flowers/export --runtime native,web   # + the browser (headless Chromium)",
        "edge bench model_int8.tflite --data photos/ --labels labels.txt",
        "edge bench runs/flowers/export --json - | jq '.models[] | {name, p50_ms}'",
    ),
)


@app.command(epilog=EPILOG)
def bench(
    models: Optional[list[Path]] = typer.Argument(None, metavar="[MODEL]...", help="Model files or export directories (default: the newest export folder under ./runs)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of class sub-folders (labels matched by name)."),
    run: Optional[Path] = typer.Option(None, "--run", help="Use this run directory's held-out split."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Reference model for agreement/drop (default: the source run's model.keras)."),
    threads: Optional[str] = typer.Option(None, "--threads", help="Thread counts to sweep, e.g. 1,2 (default: all cores)."),
    runtime: str = typer.Option(DEFAULTS.runtime, "--runtime", help="Comma list: native (each format's runtime here), web (ONNX in headless Chromium with onnxruntime-web, the web demo's engine); native,web puts them side by side."),
    batch: int = typer.Option(DEFAULTS.batch, "--batch", help="Images per timed call."),
    warmup: int = typer.Option(DEFAULTS.warmup, "--warmup", help="Untimed runs before timing."),
    runs: int = typer.Option(DEFAULTS.runs, "--runs", help="Timed runs (at most)."),
    time_budget: float = typer.Option(DEFAULTS.time_budget, "--time-budget", help="Seconds of timed runs per model and thread count (at most)."),
    max_drop: Optional[float] = typer.Option(DEFAULTS.max_drop, "--max-drop", help="Fail (exit 1) when a model's accuracy drops more points than this below the reference."),
    no_latency: bool = typer.Option(not DEFAULTS.measure_latency, "--no-latency", help="Accuracy only."),
    floor: bool = typer.Option(DEFAULTS.floor, "--floor", help="Also measure fp32 matmul FLOP/s and report latency as a multiple of the compute floor."),
    no_resize_variants: bool = typer.Option(not DEFAULTS.resize_variants, "--no-resize-variants", help=f"Skip the resize check: by default each model also runs on the photos resized as other apps resize them (the {len(VARIANTS)} other filters of edge.data.resize, and MediaPipe Tasks itself for TFLite files), and its top-1 agreement with its answers on its own resize ({REFERENCE} unless trained with --resize) is reported."),
    mediapipe_python: Optional[str] = typer.Option(DEFAULTS.mediapipe_python, mediapipe_runtime.OPTION, metavar="<path>", help=f"MediaPipe's own Python, for the {mediapipe_runtime.KEY} column (default: the one named by the variable {mediapipe_runtime.ENV}, else the one in {mediapipe_runtime.VENV}/ here, which `make mediapipe-venv` makes)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where bench.json, bench.md and bench.png go (default: bench/ beside the first model)."),
    json_target: Optional[str] = json_option("the results (bench.json)"),
    labels: Optional[str] = typer.Option(None, "--labels", help="For models without edge metadata: labels file (one per line) or comma list."),
    mean: Optional[str] = typer.Option(None, "--mean", help="For models without metadata and float input: mean in pixel units (one or three numbers)."),
    std: Optional[str] = typer.Option(None, "--std", help="For models without metadata and float input: std in pixel units (one or three numbers)."),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
) -> None:
    """Accuracy after conversion and CPU latency of each model, side by side."""
    setup_output(quiet, verbose, json_target)
    from edge.bench import bench as bench_api
    from edge.bench import report
    from edge.console import console, is_quiet
    from edge.console import result as print_result
    from edge.runtimes.foreign import parse_labels, parse_triple

    if not models:
        from edge.discover import latest_export

        found = latest_export()
        console.print(found.describe(), highlight=False)
        models = [found.path]
    json_file = None if json_target is None or json_to_stdout(json_target) else Path(json_target)
    result = bench_api(
        models, data=data, run=run, reference=reference, threads=threads, batch=batch, warmup=warmup, runs=runs,
        time_budget=time_budget, max_drop=max_drop, measure_latency=not no_latency, floor=floor, runtime=runtime,
        resize_variants=not no_resize_variants, mediapipe_python=mediapipe_python,
        labels=parse_labels(labels), mean=parse_triple(mean, "--mean"), std=parse_triple(std, "--std"),
        out=out, json_file=json_file,
    )
    if is_quiet():
        print_result(report.table(result, console.width))
    else:
        report.print_summary(result, console)
    console.print("[dim]wrote " + ", ".join(str(p) for p in result.files.values()) + "[/]", highlight=False)
    if json_to_stdout(json_target):
        write_json(json_target, report.to_json(result))
    if not result.ok:
        if is_quiet():
            failed = sorted({row.name for row in result.rows if row.passed is False})
            print_result(f"[bold red]FAIL[/]: {', '.join(failed)} dropped more than {result.max_drop:g} points of "
                         "accuracy.", highlight=False)
        raise typer.Exit(1)
