"""How far each layer's weights sit from the int8 grid, before and after fine-tuning.

The shared ImageNet MobileNetV2 weights were derived from an int8 model with batch norm folded.
If every kernel lies on its per-output-channel symmetric int8 grid (scale = max |w| / 127, what
TFLite's post-training int8 uses for weights), a layer fine-tuning leaves frozen quantizes with no
weight error, and the int8 file's answers can differ from the float model's only through the layers
fine-tuning moved (and the activations). That explains why a higher cut (fewer fine-tuned layers)
raised int8/float agreement in ``train_cv.py`` (README, "The default recipe").

For every convolution, depthwise convolution and dense kernel: the largest and the mean distance
from the grid in grid steps (0.5 is the most a rounding can be off), in the pretrained weights and
in a fine-tuned fold model of ``train_cv.py`` (``benchmarks/out/cv/RECIPE/fold0``).

    python benchmarks/scripts/int8_grid.py [--recipe ft_from_block14]

Writes benchmarks/results/int8_grid.{json,md}. Skips (exit 0) without ../shared or without the run.
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
    per_channel = np.moveaxis(kernel, channel_axis, 0).reshape(kernel.shape[channel_axis], -1).astype(np.float64)
    scale = np.abs(per_channel).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    steps = per_channel / scale
    off = np.abs(steps - np.round(steps))
    return float(off.max()), float(off.mean())


def kernels(model) -> dict[str, tuple[np.ndarray, int]]:
    """{layer name: (kernel, output-channel axis)} of the conv, depthwise and dense layers."""
    from edge.keras_setup import keras

    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out[layer.name] = (layer.get_weights()[0], 2)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out[layer.name] = (layer.get_weights()[0], -1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="ft_from_block14", help="a recipe train_cv.py ran (its fold0 run is used)")
    args = parser.parse_args()
    run_dir = WORK / "cv" / args.recipe / "fold0"
    if not require_shared(WEIGHTS, run_dir / "model.keras"):
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
    OUT_JSON.write_text(json.dumps({"recipe": args.recipe, "run": str(run_dir), "fine_tune_from": start,
                                    "rows": rows}, indent=1))
    frozen = [r for r in rows if "pretrained_max" in r and r["tuned_max"] == r["pretrained_max"]]
    moved = [r for r in rows if r not in frozen]
    md = ["# Weights against the int8 grid (per output channel, symmetric, 127 steps a side)", "",
          f"Pretrained: the shared ImageNet MobileNetV2 weights. Fine-tuned: `{args.recipe}` fold 0 (fine-tuned "
          f"from `{start}`). Distance from the grid in grid steps (0.5 is the most rounding can be off).", "",
          f"* {len(frozen)} kernels are as pretrained; their largest distance from the grid: "
          f"{max((r['pretrained_max'] for r in frozen), default=0):.4f} steps.",
          f"* {len(moved)} kernels changed (the fine-tuned layers and the new head); their mean distance: "
          f"{np.mean([r['tuned_mean'] for r in moved]) if moved else 0:.3f} steps.", "",
          "| layer | pretrained max / mean | fine-tuned max / mean |", "|---|---:|---:|"]
    for r in rows:
        before = f"{r['pretrained_max']:.3f} / {r['pretrained_mean']:.3f}" if "pretrained_max" in r else "-"
        md.append(f"| {r['layer']} | {before} | {r['tuned_max']:.3f} / {r['tuned_mean']:.3f} |")
    OUT_MD.write_text("\n".join(md) + "\n")
    print("\n".join(md[:7]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
