"""How far each layer's weights sit from the int8 grid, and how many answers that rounding changes.

The shared ImageNet MobileNetV2 weights were derived from an int8 model with batch norm folded.
If every kernel lies on its per-output-channel symmetric int8 grid (scale = max |w| / 127, what
TFLite's post-training int8 uses for weights), a layer fine-tuning leaves frozen quantizes with no
weight error, and the int8 file's answers can differ from the float model's only through the layers
fine-tuning moved and through the activations.

1. For every convolution, depthwise convolution and dense kernel: the largest and the mean distance
   from the grid in grid steps (0.5 is the most a rounding can be off), in the pretrained weights
   and in a fine-tuned fold model of ``train_cv.py`` (``benchmarks/out/cv/RECIPE/fold0``).
2. Over the 5 fold models of the recipe (500 test photos): the top-1 agreement of the float model
   with itself after its kernels are rounded to the grid (``edge.train.int8_grid.rounded``), of its
   int8 TFLite file with the float model, and of the int8 file with the rounded model. Where the
   last is near 100%, weight rounding is what changes int8 answers, not the activations: the case
   for ``int8_exact`` (README, "The default recipe").

    python benchmarks/scripts/int8_grid.py [--recipe ft_from_block14]

Writes benchmarks/results/int8_grid.{json,md}. Skips (exit 0) without ../shared or without the runs.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import RESULTS, WEIGHTS, WORK, require_shared

OUT_JSON = RESULTS / "int8_grid.json"
OUT_MD = RESULTS / "int8_grid.md"


def steps_off(kernel: np.ndarray, channel_axis: int) -> tuple[float, float]:
    """(max, mean) distance of ``kernel`` from its per-channel symmetric int8 grid, in grid steps."""
    from edge.train.int8_grid import STEPS

    per_channel = np.moveaxis(kernel, channel_axis, 0).reshape(kernel.shape[channel_axis], -1).astype(np.float64)
    scale = np.abs(per_channel).max(axis=1, keepdims=True) / STEPS
    scale[scale == 0] = 1.0
    steps = per_channel / scale
    off = np.abs(steps - np.round(steps))
    return float(off.max()), float(off.mean())


def agreement(recipe: str) -> dict:
    """Right answers and agreements over the recipe's folds: float, kernels rounded, int8 file."""
    from edge.data.images import load_images
    from edge.keras_setup import keras
    from edge.rundir import open_run
    from edge.runtimes.litert import LiteRTPredictor
    from edge.runtimes.tensorflow import load_keras
    from edge.train.int8_grid import rounded

    counts = dict.fromkeys(("photos", "float_right", "rounded_right", "int8_right", "rounded_vs_float",
                            "int8_vs_float", "int8_vs_rounded"), 0)
    for fold in sorted((WORK / "cv" / recipe).glob("fold*")):
        run = open_run(fold)
        test = run.samples("test")
        labels = np.array([s.label for s in test])
        images = load_images([s.path for s in test], run.spec.input_size)
        model = load_keras(run.model_path)
        top1 = {"float": model.predict(images.astype(np.float32), verbose=0).argmax(1)}
        for kernel, axis in kernels(model, variables=True).values():
            kernel.assign(rounded(kernel, axis))
        top1["rounded"] = model.predict(images.astype(np.float32), verbose=0).argmax(1)
        int8_file = next((fold / "export").rglob("*int8*.tflite"))  # rejected/ when the gate failed
        top1["int8"] = LiteRTPredictor(int8_file, run.spec)(images).argmax(1)
        counts["photos"] += len(labels)
        for name in ("float", "rounded", "int8"):
            counts[f"{name}_right"] += int((top1[name] == labels).sum())
        for a, b in (("rounded", "float"), ("int8", "float"), ("int8", "rounded")):
            counts[f"{a}_vs_{b}"] += int((top1[a] == top1[b]).sum())
        keras.backend.clear_session()
    return counts


def kernels(model, variables: bool = False) -> dict[str, tuple]:
    """{layer name: (kernel, output-channel axis)} of the conv, depthwise and dense layers (every
    layer, frozen or not); the kernels as arrays, or as the variables themselves."""
    from edge.keras_setup import keras

    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel, axis = layer.depthwise_kernel, 2
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel, axis = layer.kernel, len(layer.kernel.shape) - 1
        else:
            continue
        out[layer.name] = (kernel if variables else kernel.numpy(), axis)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="ft_from_block14", help="a recipe train_cv.py ran (its fold0 run is used)")
    args = parser.parse_args()
    run_dir = WORK / "cv" / args.recipe / "fold0"
    if not require_shared(WEIGHTS, run_dir / "model.keras", run_dir / "export"):
        return 0
    from edge.keras_setup import keras
    from edge.runtimes.tensorflow import load_keras

    pretrained = kernels(keras.applications.MobileNetV2(weights=str(WEIGHTS), include_top=False,
                                                        input_shape=(224, 224, 3)))
    tuned_model = load_keras(run_dir / "model.keras")
    tuned = kernels(tuned_model)
    start = json.loads((run_dir / "spec.json").read_text())["training"]["fine_tune_from"]
    rows = []
    for name, (kernel, axis) in tuned.items():
        row = {"layer": name}
        if name in pretrained:
            row["pretrained_max"], row["pretrained_mean"] = steps_off(*pretrained[name])
        row["tuned_max"], row["tuned_mean"] = steps_off(kernel, axis)
        rows.append(row)
    counts = agreement(args.recipe)
    OUT_JSON.write_text(json.dumps({"recipe": args.recipe, "run": str(run_dir), "fine_tune_from": start,
                                    "agreement": counts, "rows": rows}, indent=1))
    frozen = [r for r in rows if "pretrained_max" in r and r["tuned_max"] == r["pretrained_max"]]
    moved = [r for r in rows if r not in frozen]
    md = ["# Weights against the int8 grid (per output channel, symmetric, 127 steps a side)", "",
          f"Pretrained: the shared ImageNet MobileNetV2 weights. Fine-tuned: `{args.recipe}` fold 0 (fine-tuned "
          f"from `{start}`). Distance from the grid in grid steps (0.5 is the most rounding can be off).", "",
          f"* {len(frozen)} kernels are as pretrained; their largest distance from the grid: "
          f"{max((r['pretrained_max'] for r in frozen), default=0):.4f} steps.",
          f"* {len(moved)} kernels changed (the fine-tuned layers and the new head); their mean distance: "
          f"{np.mean([r['tuned_mean'] for r in moved]) if moved else 0:.3f} steps.", "",
          f"Over the {counts['photos']} test photos of `{args.recipe}`'s 5 folds (each photo tested once):", "",
          "| model | right | agrees with the float model | agrees with the rounded model |", "|---|---:|---:|---:|",
          f"| float (as trained) | {_pct(counts['float_right'], counts)} | - | {_pct(counts['rounded_vs_float'], counts)} |",
          f"| float, kernels rounded to the int8 grid | {_pct(counts['rounded_right'], counts)} | "
          f"{_pct(counts['rounded_vs_float'], counts)} | - |",
          f"| int8 TFLite file | {_pct(counts['int8_right'], counts)} | {_pct(counts['int8_vs_float'], counts)} | "
          f"{_pct(counts['int8_vs_rounded'], counts)} |", "",
          "| layer | pretrained max / mean | fine-tuned max / mean |", "|---|---:|---:|"]
    for r in rows:
        before = f"{r['pretrained_max']:.3f} / {r['pretrained_mean']:.3f}" if "pretrained_max" in r else "-"
        md.append(f"| {r['layer']} | {before} | {r['tuned_max']:.3f} / {r['tuned_mean']:.3f} |")
    OUT_MD.write_text("\n".join(md) + "\n")
    print("\n".join(md[:15]))
    return 0


def _pct(count: int, counts: dict) -> str:
    return f"{count / counts['photos']:.1%} ({count})"


if __name__ == "__main__":
    raise SystemExit(main())
