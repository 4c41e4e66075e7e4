"""Benchmark of `edge train` on real photos (flowers-mini) with ImageNet MobileNetV2 weights.

(a) Stage-1 speed: head training on cached bottleneck features vs a plain ``fit`` of the frozen
    model on images, same epochs, same data, same optimizer, measured in one run (target >= 10x
    faster at the same validation accuracy +-1 pt).
(b) Accuracy of the default recipe: val/test accuracy after stage 1 and after fine-tuning
    (target >= 88% test accuracy on the 80/10/10 split).

    python benchmarks/scripts/train_flowers.py [--data DIR] [--weights FILE] [--epochs 20] [--fine-tune-epochs 10]

Writes benchmarks/results/train_flowers.{json,md}. Skips (exit 0, message) without ../shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py, also when imported from elsewhere
from common import FLOWERS, RESULTS, WEIGHTS, WORK, require_shared


def stage1_comparison(run_dir: Path, weights: str, epochs: int, batch_size: int, seed: int) -> dict:
    """Time stage 1 both ways on the run's own split."""
    from edge.console import progress
    from edge.data.pipeline import image_dataset
    from edge.keras_setup import keras, tf
    from edge.rundir import open_run
    from edge.train.model import build_model, head_model, set_trainable
    from edge.train.stages import cache_bottlenecks

    run = open_run(run_dir)
    size, n = run.spec.input_size, run.spec.num_classes
    train, val = run.samples("train"), run.samples("val")
    y_val = np.array([s.label for s in val])

    def compile_(model):
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])

    # Cached bottlenecks: one backbone pass per image, then the head on the features.
    keras.utils.set_random_seed(seed)
    model, _ = build_model(run.spec.backbone, n, size, weights, run.spec.alpha)
    set_trainable(model, run.spec.backbone, "head")
    with tempfile.TemporaryDirectory() as tmp, progress(transient=True) as bar:
        t0 = time.perf_counter()
        x_tr, y_tr = cache_bottlenecks(model, train, size, batch_size, Path(tmp) / "tr.npz", bar, "train")
        head = head_model(model)
        compile_(head)
        head.fit(x_tr, tf.one_hot(y_tr, n), batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
        cached_s = time.perf_counter() - t0
    cached_val = float(np.mean(model.predict(image_dataset(val, size, 64, cache=False), verbose=0).argmax(1) == y_val))

    # Plain fit: the frozen backbone runs on every image in every epoch (decoded images cached).
    keras.utils.set_random_seed(seed)
    model, _ = build_model(run.spec.backbone, n, size, weights, run.spec.alpha)
    set_trainable(model, run.spec.backbone, "head")
    compile_(model)
    ds = image_dataset(train, size, batch_size, shuffle=True, seed=seed).map(lambda x, y: (x, tf.one_hot(y, n)))
    t0 = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0)
    plain_s = time.perf_counter() - t0
    plain_val = float(np.mean(model.predict(image_dataset(val, size, 64, cache=False), verbose=0).argmax(1) == y_val))
    return {"epochs": epochs, "train_images": len(train), "cached_s": round(cached_s, 2), "plain_fit_s": round(plain_s, 2),
            "speedup": round(plain_s / cached_s, 2), "cached_val_accuracy": cached_val, "plain_val_accuracy": plain_val,
            "val_accuracy_diff_pts": round(100 * (cached_val - plain_val), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--run-dir", type=Path, default=WORK / "flowers-mini")
    args = parser.parse_args()
    if not require_shared(args.data, args.weights):
        return 0

    from edge import train
    from edge.bench.report import machine_info

    t0 = time.perf_counter()
    result = train(args.data, run_dir=args.run_dir, weights=str(args.weights), epochs=args.epochs,
                   fine_tune_epochs=args.fine_tune_epochs, force=True)
    train_s = time.perf_counter() - t0
    m = result.metrics
    comparison = stage1_comparison(result.run_dir, str(args.weights), args.epochs, 32, 42)
    machine = machine_info()
    out = {
        "machine": f"{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}",
        "versions": result.spec.versions,
        "data": str(args.data), "split_counts": result.spec.split["counts"],
        "recipe": {"backbone": result.spec.backbone, "input": list(result.spec.input_size), "epochs": args.epochs,
                   "fine_tune_epochs": args.fine_tune_epochs},
        "accuracy": {"after_head": m["stages"]["head"], "after_fine_tune": m["stages"].get("fine_tune"),
                     "final_test": m["test"]["accuracy"], "final_val": m["val"]["accuracy"]},
        "timings": m["timings"], "train_wall_s": round(train_s, 1),
        "stage1_cached_vs_plain_fit": comparison,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_flowers.json").write_text(json.dumps(out, indent=1))
    c = comparison
    md = [
        "# edge train on flowers-mini (ImageNet MobileNetV2, 224 px)", "",
        f"Machine: {out['machine']}. Split: {out['split_counts']}.", "",
        "| stage | val accuracy | test accuracy |", "|---|---|---|",
        f"| after stage 1 (head on cached bottlenecks) | {m['stages']['head'].get('val', float('nan')):.1%} | {m['stages']['head'].get('test', float('nan')):.1%} |",
    ]
    if "fine_tune" in m["stages"]:
        md.append(f"| after fine-tuning | {m['stages']['fine_tune']['val']:.1%} | {m['stages']['fine_tune']['test']:.1%} |")
    md += ["", f"Timings (s): {m['timings']}", "",
           f"## Stage 1: cached bottlenecks vs plain fit ({c['epochs']} epochs, {c['train_images']} images, one run)", "",
           "| method | seconds | val accuracy |", "|---|---|---|",
           f"| cached bottlenecks + head | {c['cached_s']} | {c['cached_val_accuracy']:.1%} |",
           f"| plain fit of the frozen model | {c['plain_fit_s']} | {c['plain_val_accuracy']:.1%} |", "",
           f"Speed-up: **{c['speedup']}x**, val accuracy difference {c['val_accuracy_diff_pts']:+.1f} pts."]
    (RESULTS / "train_flowers.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
