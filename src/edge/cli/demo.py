"""``edge demo``: the whole pipeline on an embedded default, nothing downloaded.

Draws a synthetic 5-class dataset, trains a small MobileNetV2 from scratch (``weights=none``),
exports it to TFLite (full int8), ONNX (int8) and Core ML (fp16), each verified against the Keras
model, benchmarks the exports, and prints where everything is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.cli.export_cmd import report_table
from edge.console import console

DEMO_CLASSES = 5
DEMO_PER_CLASS = 100
DEMO_IMAGE_SIZE = 64
# 100 held-out images: one image is 1 point. The demo's model is tiny (alpha 0.35, 64 px) and trained
# for about a minute; its int8 versions may flip an image or two, so its budget is 3 points instead
# of the default 1 (the report shows the real drop either way).
DEMO_MAX_DROP = 3.0
DEMO_EXPORT = dict(formats=("tflite", "onnx", "coreml"), quantize=("int8", "fp16"), max_drop=DEMO_MAX_DROP)
DEMO_TRAIN = dict(backbone="mobilenet_v2", alpha=0.35, weights="none", image_size=DEMO_IMAGE_SIZE, epochs=12,
                  batch_size=16, learning_rate=3e-3, patience=6, seed=0, split=(0.6, 0.2, 0.2))


@dataclass
class DemoResult:
    out_dir: Path
    data_dir: Path
    run_dir: Path
    export_dir: Path
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    train_metrics: dict = field(default_factory=dict)
    export_ok: bool = False
    bench_ok: bool = False

    @property
    def ok(self) -> bool:
        return self.export_ok and self.bench_ok


def demo(out_dir: str | Path = "edge-demo", force: bool = False, per_class: int = DEMO_PER_CLASS,
         epochs: int = DEMO_TRAIN["epochs"]) -> DemoResult:
    from edge.bench import bench
    from edge.data.synth import synth
    from edge.export import export
    from edge.train import train

    out = Path(out_dir)
    data_dir, run_dir, export_dir = out / "data", out / "runs" / "shapes", out / "exports"
    steps: dict[str, float] = {}
    console.rule("[bold]edge demo[/]: synthetic shapes -> trained classifier")
    t = time.perf_counter()
    if force or not data_dir.is_dir():
        synth(data_dir, classes=DEMO_CLASSES, per_class=per_class, image_size=96, seed=0, force=force)
    steps["synthesize data"] = time.perf_counter() - t
    t = time.perf_counter()
    result = train(data_dir, run_dir=run_dir, force=force, **{**DEMO_TRAIN, "epochs": epochs})
    steps["train"] = time.perf_counter() - t
    demo_result = DemoResult(out, data_dir, run_dir, export_dir, steps, result.metrics)

    console.rule("[bold]export[/]: quantize, convert, verify each artifact against the Keras model")
    console.print(f"int8 budget for this tiny demo model: accuracy drop <= {DEMO_MAX_DROP:g} pts (default: 1).")
    t = time.perf_counter()
    exported = export(run_dir, out=export_dir, force=True, **DEMO_EXPORT)
    console.print(report_table(exported))
    steps["export + verify"] = time.perf_counter() - t
    demo_result.export_ok = exported.ok

    console.rule("[bold]bench[/]: accuracy kept and CPU latency of every artifact")
    t = time.perf_counter()
    benched = bench([export_dir], run=run_dir, threads="1", runs=50, time_budget=3.0, out=export_dir)
    from edge.bench import report

    report.print_summary(benched, console)
    steps["bench"] = time.perf_counter() - t
    demo_result.bench_ok = benched.ok
    _summary(demo_result)
    return demo_result


def _summary(result: DemoResult) -> None:
    from rich.table import Table

    table = Table(title="edge demo: what happened", title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in result.steps.items():
        table.add_row(step, f"{seconds:.1f}")
    console.print(table)
    test = result.train_metrics.get("test", {})
    console.print(f"Test accuracy {test.get('accuracy', float('nan')):.1%} on {test.get('count', 0)} held-out images "
                  f"(chance: {1 / DEMO_CLASSES:.0%}).")
    console.print(f"Dataset:       {result.data_dir}")
    console.print(f"Run directory: {result.run_dir}  (model.keras, spec.json, metrics.json, confusion_matrix.png, training_curves.png)")
    console.print(f"Exports:       {result.export_dir}  (export_report.json, bench.json, bench.md, bench.png)")
    verdict = "[green]all exports verified and within budget[/]" if result.ok else "[red]some exports failed: see above[/]"
    console.print(f"Result:        {verdict}")
