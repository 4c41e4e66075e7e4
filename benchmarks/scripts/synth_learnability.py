"""Is the synthetic dataset learnable? Trains a tiny from-scratch CNN on it and reports accuracy.

``edge demo`` and the end-to-end train tests rely on the generator producing data that a small
MobileNetV2 trained from scratch learns in a few epochs on a CPU. This script checks that:
5 classes x 60 images at 64 px, 80/20 stratified split, MobileNetV2 (alpha 0.35, no pretrained
weights), Adam, sparse categorical cross-entropy, batch 32, no augmentation, for each seed given.
It reports validation accuracy after every epoch (so "after 10 epochs" and "after 20" come from
one run), and the accuracy on the training images in inference mode (the generalisation gap).
Chance is 1/classes.

Usage: python benchmarks/scripts/synth_learnability.py [--seeds 0 1] [--epochs 20] [--lr 1e-3]
Results: printed and saved to benchmarks/results/synth_learnability.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge.data.images import load_images
from edge.data.split import stratified_split
from edge.data.synth import synth
from edge.rundir import Sample

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py, also when imported from elsewhere
from common import RESULTS

RESULTS_FILE = RESULTS / "synth_learnability.json"
VAL_FRACTION = 0.2


def split_indices(paths: list[Path], labels: list[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and val positions in ``paths``: edge's stratified split (no test part), in the original order."""
    samples = [Sample(str(path), label) for path, label in zip(paths, labels)]
    parts = stratified_split(samples, (1.0 - val_fraction, val_fraction, 0.0), seed)
    position = {sample.path: i for i, sample in enumerate(samples)}
    return tuple(np.array(sorted(position[s.path] for s in parts[name])) for name in ("train", "val"))  # type: ignore[return-value]


def run_once(args, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = synth(Path(tmp) / "synth", args.classes, args.per_class, args.image_size, seed, quiet=True)
        synth_s = time.perf_counter() - t0
        paths, labels = [], []
        for index, label in enumerate(data.labels):
            files = sorted((data.out_dir / label).iterdir())
            paths += files
            labels += [index] * len(files)
        x = load_images(paths, (args.image_size, args.image_size)).astype(np.float32)
    y = np.array(labels)
    train_idx, val_idx = split_indices(paths, labels, VAL_FRACTION, seed)

    from edge.keras_setup import keras
    from edge.train.model import build_model

    keras.utils.set_random_seed(seed)
    model, _ = build_model("mobilenet_v2", args.classes, args.image_size, weights="none", alpha=0.35)
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    t0 = time.perf_counter()
    history = model.fit(
        x[train_idx], y[train_idx], validation_data=(x[val_idx], y[val_idx]),
        epochs=args.epochs, batch_size=32, shuffle=True, verbose=0,
    )
    train_s = time.perf_counter() - t0
    val_curve = [round(float(v), 4) for v in history.history["val_accuracy"]]
    predicted = model.predict(x[val_idx], verbose=0).argmax(1)
    train_eval = model.evaluate(x[train_idx], y[train_idx], verbose=0)[1]
    result = {
        "seed": seed,
        "labels": data.labels,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "val_accuracy_at_epoch_10": val_curve[min(10, args.epochs) - 1],
        "val_accuracy_final": float((predicted == y[val_idx]).mean()),
        "val_accuracy_best_epoch": max(val_curve),
        "val_accuracy_per_epoch": val_curve,
        "train_accuracy_inference_mode": round(float(train_eval), 4),
        "distinct_predicted_classes": int(len(np.unique(predicted))),
        "synth_seconds": round(synth_s, 2),
        "train_seconds": round(train_s, 2),
    }
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args()

    runs = [run_once(args, seed) for seed in args.seeds]
    from edge.bench.report import machine_info
    from edge.keras_setup import tf

    machine = machine_info()
    summary = {
        "benchmark": "synth_learnability",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        | {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": "none", "optimizer": "adam",
           "batch_size": 32, "val_fraction": VAL_FRACTION, "augmentation": "none"},
        "chance": 1.0 / args.classes,
        "mean_val_accuracy_at_epoch_10": round(float(np.mean([r["val_accuracy_at_epoch_10"] for r in runs])), 4),
        "mean_val_accuracy_final": round(float(np.mean([r["val_accuracy_final"] for r in runs])), 4),
        "runs": runs,
        "machine": {"platform": platform.platform(), "python": machine["python"],
                    "tensorflow": tf.__version__, "cpus": machine["cores"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("runs", "machine", "config")}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
