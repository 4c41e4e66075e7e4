"""``edge demo``: the whole pipeline on an embedded default, nothing downloaded.

Draws a synthetic 5-class dataset, trains a small MobileNetV2 from scratch (``weights=none``),
then exports and benchmarks it, and prints where everything is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.console import console

DEMO_CLASSES = 5
DEMO_PER_CLASS = 60
DEMO_IMAGE_SIZE = 64
DEMO_TRAIN = dict(backbone="mobilenet_v2", alpha=0.35, weights="none", image_size=DEMO_IMAGE_SIZE, epochs=15,
                  batch_size=16, patience=6, seed=0)


@dataclass
class DemoResult:
    out_dir: Path
    data_dir: Path
    run_dir: Path
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    train_metrics: dict = field(default_factory=dict)


def demo(out_dir: str | Path = "edge-demo", force: bool = False) -> DemoResult:
    from edge.data.synth import synth
    from edge.train import train

    out = Path(out_dir)
    data_dir, run_dir = out / "data", out / "runs" / "shapes"
    steps: dict[str, float] = {}
    console.rule("[bold]edge demo[/]: synthetic shapes -> trained classifier")
    t = time.perf_counter()
    if force or not data_dir.is_dir():
        synth(data_dir, classes=DEMO_CLASSES, per_class=DEMO_PER_CLASS, image_size=96, seed=0, force=force)
    steps["synthesize data"] = time.perf_counter() - t
    t = time.perf_counter()
    result = train(data_dir, run_dir=run_dir, force=force, **DEMO_TRAIN)
    steps["train"] = time.perf_counter() - t
    demo_result = DemoResult(out, data_dir, run_dir, steps, result.metrics)
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
