"""Core ML verification on Linux: the compiled MIL executor against the NumPy one and against Keras.

One MobileNetV2 at 224 px: with ../shared's ImageNet weights present, the head trained on
flowers-mini with ``edge.train.train`` (cached in benchmarks/out/runs/); without them, random
weights with batch-norm statistics of the images and a random head (a model whose probabilities
are not all equal: the engines are compared, not the model). Images: held-out flowers-mini photos
when ../shared has them, else edge's synthetic shapes.

In one run: the Keras reference pass (edge's ``KerasPredictor``, one ``tf.function``) on all
images, then per Core ML kind: the export, and the verification as the export gate runs it
(load the package, classify every image) with the compiled executor (TensorFlow, the default) and
with the NumPy executor on the first ``--numpy-images`` images (slow: seconds per image); verify
seconds, seconds per image, and the agreement of the engines. The machine is shared, so each
warm timing is the best of ``--repeats`` passes, Keras and the compiled executor taken in turns.
Results: ``benchmarks/results/coreml_executor.md`` and ``.json`` (with the CPU's flags).

Run: ``python benchmarks/scripts/coreml_executor.py [--images 200] [--numpy-images 50]
[--kinds fp32,fp16,int8,palettize4,palettize6,palettize8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py
from common import FLOWERS, RESULTS, WEIGHTS, WORK

KINDS = "fp32,fp16,int8,palettize4,palettize6,palettize8"
SIZE = 224


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="Images for Keras and the compiled executor.")
    parser.add_argument("--numpy-images", type=int, default=50, help="Images for the (slow) NumPy executor.")
    parser.add_argument("--kinds", default=KINDS)
    parser.add_argument("--repeats", type=int, default=3, help="Warm passes timed (best of).")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    load_before = os.getloadavg()

    from edge.bench.report import machine_info
    from edge.export.formats import coreml
    from edge.keras_setup import tf
    from edge.runtimes.mil.executor import ENGINE_NAMES, MilExecutor
    from edge.runtimes.tensorflow import KerasPredictor

    model, spec, images, labels, model_desc, images_desc = _model_and_images(args)
    n = len(images)

    # The Keras reference pass, as the export gate makes it: build the predictor, classify all.
    start = time.perf_counter()
    keras_predictor = KerasPredictor(model, spec)
    reference = keras_predictor(images)
    keras_cold = time.perf_counter() - start
    keras_warm_all: list[float] = []

    def keras_warm() -> float:
        t = _best(lambda: keras_predictor(images), args.repeats)
        keras_warm_all.append(t)
        return t

    out_dir = WORK / "coreml_executor"
    rows = []
    for kind in [k for k in args.kinds.split(",") if k]:
        art = coreml.export(model, spec, kind, out_dir / f"mobilenet_v2_{kind}.mlpackage", None, {"source_run": ""})
        # Compiled executor (the default): verify = load (trace the program) + classify every image.
        start = time.perf_counter()
        fast = MilExecutor(art.path)
        fast_load = time.perf_counter() - start
        start = time.perf_counter()
        fast_probs = fast.classify(images, spec.labels)
        fast_first = time.perf_counter() - start
        keras_t = keras_warm()
        fast_warm = _best(lambda fast=fast: fast.classify(images, spec.labels), args.repeats)
        # NumPy executor on the first images.
        m = min(args.numpy_images, n)
        start = time.perf_counter()
        slow = MilExecutor(art.path, engine="numpy")
        slow_load = time.perf_counter() - start
        start = time.perf_counter()
        slow_probs = slow.classify(images[:m], spec.labels)
        slow_run = time.perf_counter() - start
        slow_per_image = slow_run / m
        row = {
            "kind": kind, "size_mb": round(art.size_bytes / 1e6, 2), "export_s": round(art.convert_seconds, 1),
            "compiled": {
                "load_s": round(fast_load, 2), "first_pass_s": round(fast_first, 2),
                "verify_s": round(fast_load + fast_first, 2), "warm_pass_s": round(fast_warm, 2),
                "s_per_image": round(fast_warm / n, 5),
            },
            "numpy": {
                "images": m, "load_s": round(slow_load, 2), "run_s": round(slow_run, 1),
                "s_per_image": round(slow_per_image, 4),
                "verify_s_estimated": round(slow_load + slow_per_image * n, 1),
            },
            "keras_warm_pass_s": round(keras_t, 2),
            "ratio_compiled_vs_keras_warm": round(fast_warm / keras_t, 2),
            "ratio_compiled_verify_vs_keras_reference": round((fast_load + fast_first) / keras_cold, 2),
            "speedup_vs_numpy_per_image": round(slow_per_image / (fast_warm / n), 1),
            "compiled_vs_numpy_max_prob_diff": float(f"{np.abs(fast_probs[:m] - slow_probs).max():.3g}"),
            "compiled_vs_numpy_top1_agreement": round(float(np.mean(fast_probs[:m].argmax(1) == slow_probs.argmax(1))), 4),
            "compiled_vs_keras_max_prob_diff": float(f"{np.abs(fast_probs - reference).max():.3g}"),
            "compiled_vs_keras_top1_agreement": round(float(np.mean(fast_probs.argmax(1) == reference.argmax(1))), 4),
            "accuracy": round(float(np.mean(fast_probs.argmax(1) == labels)), 4) if labels is not None else None,
            "ops": fast.op_types,
        }
        rows.append(row)
        print(f"{kind}: compiled {row['compiled']['s_per_image'] * 1000:.1f} ms/image "
              f"(x{row['ratio_compiled_vs_keras_warm']} Keras), NumPy {slow_per_image:.2f} s/image "
              f"(x{row['speedup_vs_numpy_per_image']} faster), max diff vs NumPy {row['compiled_vs_numpy_max_prob_diff']}",
              flush=True)
    machine = machine_info()
    result = {
        "machine": {**machine, "cpu_flags_all": _all_cpu_flags(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "model": model_desc, "images": images_desc, "image_count": n,
        "tensorflow": tf.__version__, "numpy": np.__version__,
        "engines": {"compiled": ENGINE_NAMES["tensorflow"], "numpy": ENGINE_NAMES["numpy"],
                    "keras": keras_predictor.runtime},
        "keras_reference": {"cold_s": round(keras_cold, 2), "warm_pass_s_best": round(min(keras_warm_all), 2),
                            "s_per_image": round(min(keras_warm_all) / n, 5),
                            "accuracy": round(float(np.mean(reference.argmax(1) == labels)), 4) if labels is not None else None},
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coreml_executor.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "coreml_executor.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _model_and_images(args):
    """(Keras model, ModelSpec, uint8 images, labels or None, model description, images description)."""
    from edge.data.images import load_images

    if FLOWERS.is_dir() and WEIGHTS.is_file():
        from edge.rundir import open_run
        from edge.runtimes.tensorflow import load_keras
        from edge.train import train

        run_dir = WORK / "runs" / "coreml_flowers_mobilenet_v2_224"
        if args.retrain or not (run_dir / "spec.json").is_file():
            train(FLOWERS, run_dir=run_dir, backbone="mobilenet_v2", weights=str(WEIGHTS), image_size=SIZE,
                  epochs=args.epochs, fine_tune_epochs=0, split=(0.5, 0.1, 0.4), seed=0, force=True)
        run = open_run(run_dir)
        samples = _balanced(run.held_out(), args.images)
        images = load_images([s.path for s in samples], run.spec.input_size)
        return (load_keras(run.model_path), run.spec, images, np.array([s.label for s in samples]),
                "mobilenet_v2 (ImageNet weights, head trained on flowers-mini), 224px",
                f"{len(images)} held-out flowers-mini photos")
    return _random_model(args)


def _random_model(args):
    """MobileNetV2 224 with random weights (no ImageNet weights here); batch-norm statistics of the
    images and a random head scaled so the probabilities differ between images."""
    from edge.keras_setup import keras
    from edge.spec import ModelSpec
    from edge.train.model import build_model

    if FLOWERS.is_dir():
        from edge.data.images import load_images

        paths = sorted(p for d in sorted(FLOWERS.iterdir()) if d.is_dir() for p in sorted(d.iterdir())
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        picked = paths[:: max(1, len(paths) // args.images)][: args.images]
        images = load_images(picked, (SIZE, SIZE))
        images_desc = f"{len(images)} flowers-mini photos (every {max(1, len(paths) // args.images)}th)"
    else:
        from edge.data.synth import class_table, draw_image

        per = -(-args.images // 5)
        images = np.stack([np.asarray(draw_image(s, SIZE, np.random.default_rng([0, c, i])).convert("RGB"), np.uint8)
                           for c, s in enumerate(class_table(5)) for i in range(per)])[: args.images]
        images_desc = f"{len(images)} synthetic shapes (no ../shared/data/flowers-mini)"
    labels = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    keras.utils.set_random_seed(0)
    model, norm = build_model("mobilenet_v2", len(labels), SIZE, weights="none", alpha=1.0)
    x = images[:32].astype(np.float32)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)
    features = keras.Model(model.input, model.get_layer("features").output).predict(x, verbose=0)
    dense = model.get_layer("logits")
    w = np.random.default_rng(1).normal(size=dense.get_weights()[0].shape).astype(np.float32)
    w *= 2.0 / (features.std() * np.sqrt(features.shape[1]) + 1e-6)
    dense.set_weights([w, -(features.mean(0) @ w)])
    spec = ModelSpec(name="coreml_executor_bench", backbone="mobilenet_v2", labels=labels, input_size=(SIZE, SIZE),
                     normalization=norm, alpha=1.0, weights="none")
    return (model, spec, images, None,
            "mobilenet_v2 alpha 1.0, 224px, random weights (no ImageNet weights in ../shared/keras_home/models), "
            "batch-norm statistics of the images, random head", images_desc)


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


def _all_cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).split() if match else []


def _markdown(result) -> str:
    k = result["keras_reference"]
    m = result["machine"]
    lines = [
        "# Core ML verification on Linux: compiled MIL executor vs NumPy executor vs Keras", "",
        f"{result['model']}; {result['images']}.",
        f"Machine: {m['cpu']}, {m['cores']} cpus ({', '.join(m['cpu_flags'])}); load average "
        f"{m['load_average_before'][0]} before, {m['load_average_after'][0]} after (a shared machine: warm times are the "
        f"best of several passes, Keras and compiled in turns). TensorFlow {result['tensorflow']}, NumPy {result['numpy']}.",
        "",
        f"Keras reference ({result['engines']['keras']}): {k['cold_s']} s cold (build + trace + {result['image_count']} images), "
        f"{k['warm_pass_s_best']} s warm = {k['s_per_image'] * 1000:.1f} ms/image.",
        "",
        "Compiled = " + result["engines"]["compiled"] + "; NumPy = " + result["engines"]["numpy"] + ".",
        "verify s = load + first classification of all images (what the export gate spends); NumPy verify is "
        "estimated from its s/image on the first images.",
        "",
        "| kind | size MB | compiled verify s | compiled ms/image | x Keras (warm) | x Keras reference (verify vs cold) "
        "| NumPy s/image | NumPy verify s (est.) | compiled speed-up | max prob diff vs NumPy | top-1 vs NumPy | max prob diff vs Keras |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        c, n = r["compiled"], r["numpy"]
        lines.append(
            f"| {r['kind']} | {r['size_mb']} | {c['verify_s']} | {c['s_per_image'] * 1000:.1f} | {r['ratio_compiled_vs_keras_warm']} | "
            f"{r['ratio_compiled_verify_vs_keras_reference']} | {n['s_per_image']} | {n['verify_s_estimated']} | "
            f"{r['speedup_vs_numpy_per_image']}x | {r['compiled_vs_numpy_max_prob_diff']} | "
            f"{r['compiled_vs_numpy_top1_agreement']:.0%} | {r['compiled_vs_keras_max_prob_diff']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
