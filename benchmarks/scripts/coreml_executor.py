"""Core ML on Linux: agreement of Core ML exports with Keras through the MIL reference executor.

On ../shared/data/flowers-mini with an ImageNet MobileNetV2 (offline weights in
../shared/keras_home), trained with ``edge.train.train`` (head only, cached in
benchmarks/results/runs/), exports Core ML fp16, fp32, int8-weight and 6-bit palettized packages
and runs each through the executor on held-out images: top-1 agreement with Keras, accuracy, drop,
max probability difference, package size, export time and executor seconds per image.
Results go to ``benchmarks/results/coreml_executor.md`` and ``.json``.

Run: ``python benchmarks/coreml_executor.py [--images 100] [--kinds fp16,fp32,int8,palettize6]``.
Skips with a message when the shared data or weights are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FLOWERS = SHARED / "data" / "flowers-mini"
WEIGHTS = SHARED / "keras_home" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="Held-out images to run (executor is slow).")
    parser.add_argument("--kinds", default="fp16,fp32,int8,palettize6")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    if not FLOWERS.is_dir() or not WEIGHTS.is_file():
        print(f"skipped: needs {FLOWERS} and {WEIGHTS} (see DEVELOPERS.md for the offline data and weights)")
        return 0

    from edge.console import console, progress
    from edge.data.images import load_images
    from edge.export.formats import coreml
    from edge.runtimes.tensorflow import load_keras
    from edge.rundir import open_run
    from edge.train import train
    from edge.verify import compare

    run_dir = RESULTS / "runs" / "coreml_flowers_mobilenet_v2_224"
    if args.retrain or not (run_dir / "spec.json").is_file():
        start = time.perf_counter()
        train(FLOWERS, run_dir=run_dir, backbone="mobilenet_v2", weights=str(WEIGHTS), image_size=224,
              epochs=args.epochs, fine_tune_epochs=0, split=(0.5, 0.1, 0.4), seed=0, force=True)
        console.print(f"trained {run_dir} in {time.perf_counter() - start:.0f} s")
    run = open_run(run_dir)
    model = load_keras(run.model_path)
    samples = _balanced(run.held_out(), args.images)
    images = load_images([s.path for s in samples], run.spec.input_size)
    labels = np.array([s.label for s in samples])
    reference = model.predict(images.astype(np.float32), verbose=0, batch_size=16)

    out_dir = ROOT / "benchmarks" / "out" / "coreml_executor"  # git-ignored
    rows = []
    kinds = [k for k in args.kinds.split(",") if k]
    with progress() as bar:
        task = bar.add_task("Core ML exports", total=len(kinds), info="")
        for kind in kinds:
            art = coreml.export(model, run.spec, kind, out_dir / f"flowers_{kind}.mlpackage", None,
                                {"source_run": str(run_dir)})
            predictor = coreml.load(art.path)
            predictor(images[:1])  # warm-up (BLAS threads, caches)
            start = time.perf_counter()
            probs = np.concatenate([predictor(images[i : i + 8]) for i in range(0, len(images), 8)])
            seconds = (time.perf_counter() - start) / len(images)
            one = time.perf_counter()
            predictor(images[:1])
            single = time.perf_counter() - one
            result = compare(reference, probs, labels)
            failures = coreml.FORMAT.budget(kind).failures(result.agreement, result.max_prob_diff, result.drop_pts)
            rows.append({
                "kind": kind, "size_mb": round(art.size_bytes / 1e6, 2), "export_s": round(art.convert_seconds, 1),
                "agreement": round(result.agreement, 4), "accuracy": round(result.accuracy, 4),
                "keras_accuracy": round(result.reference_accuracy, 4), "drop_pts": round(result.drop_pts, 2),
                "max_prob_diff": float(f"{result.max_prob_diff:.3g}"),
                "mean_prob_diff": float(f"{result.mean_prob_diff:.3g}"),
                "executor_s_per_image_batch8": round(seconds, 3), "executor_s_single_image": round(single, 3),
                "ops": predictor._executor.op_types, "budget": "pass" if not failures else "; ".join(failures),
                "runtime": predictor.runtime,
            })
            bar.update(task, advance=1, info=kind)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.system()}",
        "model": "mobilenet_v2 (ImageNet, head trained on flowers-mini), 224px",
        "images": len(images), "numpy": np.__version__, "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coreml_executor.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "coreml_executor.md").write_text(_markdown(result))
    console.print(_markdown(result))
    return 0


def _balanced(samples, count):
    """Up to ``count`` held-out samples, taking classes in turn so each is represented."""
    by_class: dict[int, list] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    picked = []
    while len(picked) < count and any(by_class.values()):
        for label in sorted(by_class):
            if by_class[label] and len(picked) < count:
                picked.append(by_class[label].pop(0))
    return picked


def _markdown(result) -> str:
    lines = [
        "# Core ML exports verified on Linux (MIL reference executor)", "",
        f"{result['model']}; {result['images']} held-out flowers-mini images; {result['machine']}.",
        "Executor: NumPy, fp16 programs with fp16 rounding after every op (CPU path emulated; Neural",
        "Engine/GPU not reproducible). Executor time is for checking only, not a device latency.", "",
        "| kind | size MB | export s | agreement | accuracy | Keras acc. | drop pts | max prob diff | s/image (batch 8) | s/image (single) | budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['kind']} | {r['size_mb']} | {r['export_s']} | {r['agreement']:.2%} | {r['accuracy']:.2%} | "
            f"{r['keras_accuracy']:.2%} | {r['drop_pts']} | {r['max_prob_diff']} | {r['executor_s_per_image_batch8']} | "
            f"{r['executor_s_single_image']} | {r['budget']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
