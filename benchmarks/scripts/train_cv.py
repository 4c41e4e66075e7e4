"""5-fold stratified cross-validation of a training recipe on flowers-mini (every photo tested once).

For each fold k the 100 photos of fold k are the test split; the other 400 are split (stratified,
``edge.data.split.stratified_split``) into 350 train and 50 validation photos. The fold is laid out
as pre-split folders of symbolic links under a temporary folder (the photos are never copied),
trained with ``edge.train.train`` and exported with ``edge.export`` (TFLite int8 only), which
verifies the int8 file on that fold's test split. Per fold: float test accuracy (Keras), int8
TFLite accuracy, int8-vs-float top-1 agreement, training and export seconds, and each model's
agreement with itself when the photos are resized the way apps do (edge.data.resize) or handed to
MediaPipe Tasks (where its venv is found: edge.runtimes.mediapipe). Per recipe: mean +-
std (sample std, ddof=1) over the folds.

    python benchmarks/scripts/train_cv.py [--recipe default] [--options '{"fine_tune_from": "block_13_expand"}']
        [--augment rrc] [--mix mixup:0.2] [--optimizer ema:2] [--folds 0,1,2,3,4]

``--options`` passes TrainConfig fields. Levers measured here before they go into edge (none has
paid so far, README's lever table): ``--augment rrc`` swaps edge's stage-2 augmentation for this
script's random-resized crop; ``--mix mixup:0.2`` / ``--mix cutmix:1.0`` mix every fine-tune batch
of cached activations with a shuffled copy of itself; ``--optimizer ema:2`` / ``--optimizer
adamw:0.05`` change the fine-tune's optimizer. Resize
agreement is measured against the model's own resize (``--options '{"resize": "stretch-mediapipe"}'``
trains for MediaPipe's). Recipes are
compared per fold (paired differences), since which photos land in a fold moves accuracy more
than most levers do; two runs of one recipe with different seeds give the run-to-run noise.

Results accumulate in benchmarks/results/train_cv.json (one entry per recipe and fold; a fold
already there is skipped unless --redo), and the table in train_cv.md is rewritten from it after
every fold, so an interrupted sweep keeps what it measured. Skips (exit 0) without ../shared.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FLOWERS, RESULTS, ROOT, WEIGHTS, WORK, int8_gate_passed, require_shared

K = 5
SEED = 42
OUT_JSON = RESULTS / "train_cv.json"
OUT_MD = RESULTS / "train_cv.md"


def fold_assignment(samples, k: int, seed: int) -> list[int]:
    """Stratified: within each class (sorted by path, shuffled with ``seed``) photos go round-robin to folds."""
    rng = np.random.default_rng(seed)
    fold = [0] * len(samples)
    by_label: dict[int, list[int]] = {}
    for i in sorted(range(len(samples)), key=lambda i: (samples[i].label, samples[i].path)):
        by_label.setdefault(samples[i].label, []).append(i)
    for label in sorted(by_label):
        idx = by_label[label]
        for j, pos in enumerate(rng.permutation(len(idx))):
            fold[idx[pos]] = j % k
    return fold


def lay_out_fold(samples, labels, fold, k: int, root: Path) -> dict[str, int]:
    """``root/{train,val,test}/<label>/<file>`` symbolic links for fold ``k``; returns the counts."""
    from edge.data.split import stratified_split

    test = [s for s, f in zip(samples, fold) if f == k]
    rest = [s for s, f in zip(samples, fold) if f != k]
    inner = stratified_split(rest, (0.875, 0.125, 0.0), SEED + k)
    parts = {"train": inner["train"], "val": inner["val"], "test": test}
    for split, items in parts.items():
        for s in items:
            link = root / split / labels[s.label] / Path(s.path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(s.path)
    return {split: len(items) for split, items in parts.items()}


def random_resized_crop_augmentation(seed: int):
    """The lever tried here (benchmark only, not in edge): random-resized crop (area 25-100%, aspect
    3/4-4/3, of the already resized image, resized back) + horizontal flip + the default's mild
    contrast/brightness, instead of the default's flip/rotate(+-11 deg)/zoom(10%)."""
    from edge.keras_setup import keras, tf

    class RandomResizedCrop(keras.layers.Layer):
        def __init__(self, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
            super().__init__(**kwargs)
            self.scale, self.ratio = scale, ratio
            self.rng = tf.random.Generator.from_seed(seed or 0)

        def call(self, x, training=None):
            if not training:
                return x
            n = tf.shape(x)[0]
            area = self.rng.uniform((n,), *self.scale)
            log_ratio = self.rng.uniform((n,), float(np.log(self.ratio[0])), float(np.log(self.ratio[1])))
            ratio = tf.exp(log_ratio)
            h = tf.minimum(tf.sqrt(area / ratio), 1.0)
            w = tf.minimum(tf.sqrt(area * ratio), 1.0)
            y0 = self.rng.uniform((n,)) * (1.0 - h)
            x0 = self.rng.uniform((n,)) * (1.0 - w)
            boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
            size = tf.shape(x)[1:3]
            return tf.image.crop_and_resize(x, boxes, tf.range(n), size, method="bilinear")

    layers = keras.layers
    return keras.Sequential([
        RandomResizedCrop(seed=seed),
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomContrast(0.1, seed=seed + 3),
        layers.RandomBrightness(0.1, value_range=(0.0, 255.0), seed=seed + 4),
    ], name="augmentation")


AUGMENTATIONS = {"rrc": random_resized_crop_augmentation}


def mixed_view_batches(kind: str, alpha: float):
    """The lever tried here (benchmark only): ``edge.train.views.view_batches`` with every batch of
    cached activations mixed with a shuffled copy of itself, mixing weight ~ Beta(alpha, alpha)
    drawn per batch. ``mixup``: the activations and one-hot labels blended (manifold mixup at the
    cut); ``cutmix``: a box of the 7x7 activation map taken from the partner, labels blended by
    the box's share of the map."""
    from edge.train import views

    original = views.view_batches

    def view_batches(paths, labels, num_classes, batch_size, seed, first_epoch, epochs):
        ds = original(paths, labels, num_classes, batch_size, seed, first_epoch, epochs)
        rng = np.random.default_rng([seed, first_epoch, 99])

        def mix(x, y):
            x, y = x.copy(), y.copy()
            n = len(x)
            lam = rng.beta(alpha, alpha)
            perm = rng.permutation(n)
            if kind == "mixup":
                return (lam * x + (1 - lam) * x[perm]).astype(np.float32), (lam * y + (1 - lam) * y[perm]).astype(np.float32)
            h, w = x.shape[1:3]
            ch, cw = int(round(h * np.sqrt(1 - lam))), int(round(w * np.sqrt(1 - lam)))
            cy, cx = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            x[:, cy:cy + ch, cx:cx + cw] = x[perm, cy:cy + ch, cx:cx + cw]
            share = ch * cw / (h * w)
            return x, ((1 - share) * y + share * y[perm]).astype(np.float32)

        from edge.keras_setup import tf
        spec = ds.element_spec

        def gen():
            for x, y in ds.as_numpy_iterator():
                yield mix(x, y)

        return views.settled(tf.data.Dataset.from_generator(gen, output_signature=spec))

    return view_batches


MIXES = {"mixup", "cutmix"}


def fine_tune_optimizer(kind: str, value: float):
    """The lever tried here (benchmark only): ``edge.train.stages._compile`` with another optimizer for
    the fine-tune (the head, compiled with a whole epoch per execution, keeps Adam). ``ema``: Adam
    whose weights are replaced at the end by their exponential moving average, ``value`` the horizon
    in epochs (momentum 1 - 1 / (value x steps an epoch)); ``adamw``: AdamW, decoupled weight decay
    ``value`` (decay toward zero of the trained kernels, as torch's AdamW)."""
    from edge.keras_setup import keras
    from edge.train import stages

    original = stages._compile

    def _compile(model, lr, config, steps_per_execution=1):
        if steps_per_execution != 1:
            return original(model, lr, config, steps_per_execution)
        if kind == "ema":
            steps = stages.batches_per_epoch(350, config.batch_size)  # a fold's 350 training photos
            optimizer = keras.optimizers.Adam(lr, use_ema=True, ema_momentum=1 - 1 / (value * steps))
        else:
            optimizer = keras.optimizers.AdamW(lr, weight_decay=value)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        return optimizer

    return _compile
NOTES = {  # what the recipe names in the results mean
    "default": "the previous TrainConfig defaults (fine-tuning on images, constant rate); stage 1 as before (Keras fit over tf.data, per-epoch checkpoints of the whole model)",
    "default_new_stage1": "the previous TrainConfig defaults; stage 1 by fit_head (in memory, no per-epoch checkpoint)",
    "default_new_stage1_seed7": "as default_new_stage1 with seed 7 (same folds and splits): run-to-run noise",
    "views3_cosine": "today's fine-tune: 3 cached views (clean + 2 augmented) through the frozen layers, warm-up + "
                     "cosine, every epoch run, last epoch kept, edge's own resize in every view; label smoothing 0.1",
    "defaults_now": "the TrainConfig defaults of stop 17: views3_cosine without label smoothing, 10 fine-tune "
                    "epochs (today's defaults are views2)",
    "views3_cosine_resize": "views3_cosine with resize_augment (each augmented view's photos resized with a filter "
                            "drawn from edge.data.resize)",
    "images_constant": "the previous fine-tune (images every epoch, constant rate, early stopping, best val epoch) "
                       "with today's stage 1: default_new_stage1 rerun beside views3_cosine",
    "views3_cosine_resize_ls0": "views3_cosine_resize without label smoothing (a lever for int8 agreement)",
    "views5_cosine_resize": "views3_cosine_resize with 5 views (the clean photo + 4 augmented)",
    "ft_epochs20": "defaults_now with 20 fine-tune epochs instead of 10 (the cosine stretched over 20)",
    "ft_from_block6": "defaults_now with fine-tuning from block_6_expand (blocks 6-16 trained on cached views "
                      "of block 6's input) instead of block_13_expand",
    "ft_epochs5": "defaults_now with 5 fine-tune epochs instead of 10 (a time lever: the cosine over 5)",
    "views1": "defaults_now with one cached view (the clean photo, no augmentation in the fine-tune; a time "
              "lever: no augmented views to compute)",
    "ft_lr3e-4": "defaults_now with a fine-tune peak learning rate of 3e-4 instead of 1e-4",
    "ft_lr3e-5": "defaults_now with a fine-tune peak learning rate of 3e-5 instead of 1e-4",
    "defaults_now_seed7": "defaults_now with seed 7 (same folds and splits): run-to-run noise of today's recipe",
    "ft_lr3e-4_seed7": "ft_lr3e-4 with seed 7: a second draw of the learning-rate lever",
    "ft_epochs8": "defaults_now with 8 fine-tune epochs instead of 10 (a time lever)",
    "ft_epochs8_seed7": "ft_epochs8 with seed 7",
    "views2": "ft_epochs8 with 2 cached views (the photo + 1 augmented) instead of 3: the TrainConfig defaults "
              "of stop 18",
    "views2_seed7": "views2 with seed 7",
    "ft_from_block14": "views2 fine-tuning from block_14_expand (blocks 14-16 and the last conv, all at 7x7) "
                       "instead of block_13_expand, with float kernels (`int8_exact` off, as before it existed)",
    "ft_from_block14_seed7": "ft_from_block14 with seed 7",
    "ft_from_block15": "views2 fine-tuning from block_15_expand (blocks 15-16 and the last conv)",
    "ft_from_block15_seed7": "ft_from_block15 with seed 7",
    "int8_exact": "ft_from_block14 with int8_exact: the fine-tune trains on kernels rounded to their int8 grid "
                  "(straight-through) and ends on them (edge.train.int8_grid): today's TrainConfig defaults",
    "int8_exact_seed7": "int8_exact with seed 7",
    "consistency12": "int8_exact plus a resize-consistency loss (stop 20; the code was measured and removed): every "
                     "cached view had a twin, the same photos with the same random transforms resized with a filter "
                     "drawn from edge.data.resize.VARIANTS, and the fine-tune minimised the mean cross-entropy of the "
                     "pair plus 12 x their Jensen-Shannon divergence (AugMix's consistency loss)",
    "consistency100": "consistency12 with weight 100 instead of 12",
    "blur05": "int8_exact with a fixed Gaussian blur (sigma 0.5 input pixels, 3x3) in the model before the backbone "
              "(stop 20; the code was measured and removed): the same image whichever filter resized it, to the "
              "extent the blur removes what filters disagree on",
    "ref_mediapipe": "int8_exact with MediaPipe Tasks' resize (edge.data.resize.mediapipe_cpu) as the model's own "
                     "resize, measured before the --resize option existed, by swapping edge's own filter for the "
                     "whole run (so its pillow-bilinear column is missing and its mediapipe-cpu column is the model's "
                     "own); resize_mediapipe is the same through the option",
    "resize_mediapipe": "int8_exact with resize=stretch-mediapipe: trained, gated and measured on MediaPipe Tasks' own "
                        "resize (edge.data.resize.mediapipe_cpu); resize agreement against that resize",
    "resize_mediapipe_seed7": "resize_mediapipe with seed 7",
    "size320": "int8_exact at 320x320 input instead of 224 (the same weights; flowers-mini's photos are 159-500 "
               "px a side): the ceiling of a teacher at a larger input for --distill (stop 21)",
    "mixup02": "int8_exact with manifold mixup at the cut (train_cv.py --mix mixup:0.2): every fine-tune batch of "
               "cached activations blended with a shuffled copy of itself, labels alike, weight ~ Beta(0.2, 0.2)",
    "mixup02_seed7": "mixup02 with seed 7",
    "cutmix10": "int8_exact with CutMix on the cached 7x7 activations (train_cv.py --mix cutmix:1.0): a box of each "
                "map from a shuffled partner, labels blended by the box's share, box share ~ Beta(1, 1)",
    "cutmix10_seed7": "cutmix10 with seed 7",
    "ema2": "int8_exact with a weight EMA in the fine-tune (train_cv.py --optimizer ema:2: Adam's use_ema, momentum "
            "1 - 1/(2 epochs of steps) = 0.955, the averaged weights kept at the end)",
    "adamw005": "int8_exact with AdamW (decoupled weight decay 0.05) instead of Adam in the fine-tune "
                "(train_cv.py --optimizer adamw:0.05)",
    "ema2_seed7": "ema2 with seed 7",
    "adamw005_seed7": "adamw005 with seed 7",
    "size320_seed7": "size320 with seed 7",
    "rrc_now_seed7": "rrc_now with seed 7",
    "rrc_now": "int8_exact with train_cv.py's random-resized crop (area 25-100%) + flip instead of edge's "
               "flip/rotate/zoom in the augmented view (rrc_aug measured it on the fine-tune of its day)",
    "rrc_aug": "default_new_stage1 with random-resized-crop + flip augmentation in stage 2 (train_cv.py's "
               "random_resized_crop_augmentation) instead of flip/rotate/zoom",
}


def run_fold(recipe: str, options: dict, k: int, samples, labels, fold) -> dict:
    from edge import export
    from edge.train import train

    with tempfile.TemporaryDirectory(prefix=f"edge_cv_{recipe}_{k}_") as tmp:
        data = Path(tmp) / "data"
        counts = lay_out_fold(samples, labels, fold, k, data)
        run_dir = WORK / "cv" / recipe / f"fold{k}"
        t0 = time.perf_counter()
        result = train(data, run_dir=run_dir, weights=str(WEIGHTS), force=True, quiet=True, **options)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = export(run_dir, formats="tflite", quantize="int8", out=run_dir / "export", quiet=True, force=True)
        export_s = time.perf_counter() - t0
    (entry,) = report.entries  # the one artifact this export plans
    m = result.metrics
    test = [s for s, f in zip(samples, fold) if f == k]
    resize = resize_agreement(run_dir, entry.path, test)
    return {
        "recipe": recipe, "options": options, "fold": k, "counts": counts,
        "float_test_accuracy": m["test"]["accuracy"],
        "head_test_accuracy": m["stages"].get("head", {}).get("test"),
        "int8_status": entry.status, "int8_accuracy": entry.accuracy, "int8_agreement": entry.agreement,
        "int8_reference_accuracy": entry.reference_accuracy, "int8_verify_images": entry.verify_images,
        "train_minutes": round(train_s / 60, 2), "export_s": round(export_s, 1),
        "timings": m["timings"], "best_epoch": m["best_epoch"],
        "epochs_run": {name: len(h.get("loss", [])) for name, h in result.history.items()},
        "resize_agreement": resize,
    }


def resize_agreement(run_dir: Path, int8_path: str, test) -> dict:
    """Top-1 agreement of the float model and of the int8 file with themselves when the fold's test
    photos are resized the way consumers do (edge.data.resize.VARIANTS) instead of edge's way, and,
    where MediaPipe's venv is found (edge.runtimes.mediapipe), under MediaPipe Tasks' ImageClassifier
    given the photo files (the float model through an fp32 TFLite export of it)."""
    from edge import formats
    from edge.data.images import load_variants
    from edge.data.resize import RESIZERS
    from edge.rundir import MODEL_FILE
    from edge.runtimes import mediapipe

    models = {"float": formats.load(run_dir / MODEL_FILE), "int8": formats.load(int8_path)}
    size = tuple(models["float"].spec.input_size)
    model_own = models["float"].spec.resize_filter  # the model's own resize: the one agreement is measured against
    loaded = [load_variants(s.path, size, RESIZERS) for s in test]  # each photo decoded once
    stacks = {v: np.stack([images[v] for images in loaded]) for v in RESIZERS}
    out, own = {}, {}
    for name, predictor in models.items():
        top1 = {v: predictor(images).argmax(1) for v, images in stacks.items()}
        own[name] = top1.pop(model_own)
        out[name] = {v: float(np.mean(t == own[name])) for v, t in top1.items()}
    for name, top1 in mediapipe_top1(run_dir, {"int8": int8_path}, [s.path for s in test]).items():
        out[name][mediapipe.KEY] = float(np.mean(top1 == own[name]))
    return out


def mediapipe_top1(run_dir: Path, tflite: dict[str, str], photos: list[str]) -> dict[str, np.ndarray]:
    """MediaPipe Tasks' top-1 on the photo files for the run's float model (as an fp32 TFLite export,
    ``"float"``) and each of ``tflite`` (name -> file); {} where MediaPipe's venv is not found, without
    the models MediaPipe refuses."""
    from edge import export
    from edge.runtimes import mediapipe

    found = mediapipe.locate(cwd=ROOT)  # the repository's .venv-mediapipe, wherever the script runs from
    if found.python is None:
        print(f"no MediaPipe column: {found.note}", flush=True)
        return {}
    fp32 = export(run_dir, formats="tflite", quantize="fp32", out=run_dir / "export_fp32", quiet=True, force=True)
    files = {"float": fp32.entries[0].path, **tflite}
    answers = mediapipe.classify_files(found.python, list(files.values()), photos)
    return {name: np.asarray(answers[Path(path)].top1) for name, path in files.items()
            if answers[Path(path)].top1 is not None}


def load() -> list[dict]:
    return json.loads(OUT_JSON.read_text())["folds"] if OUT_JSON.is_file() else []


def save(rows: list[dict], machine: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary, pairs, over_seeds = summarize(rows), paired(rows), paired_over_seeds(rows)
    OUT_JSON.write_text(json.dumps({"machine": machine, "data": str(FLOWERS), "k": K, "seed": SEED,
                                    "summary": summary, "paired": pairs, "paired_over_seeds": over_seeds,
                                    "folds": rows}, indent=1))
    md = ["# 5-fold cross-validation on flowers-mini (MobileNetV2 1.0, 224 px, shared ImageNet weights)", "",
          f"Machine: {machine}; 2 cores shared with other jobs, so minutes are indicative. Each fold: 100 test "
          "photos (every photo tested once over the 5 folds), 350 train / 50 val from the other 400. int8 = "
          "`edge export --formats tflite --quantize int8`, verified on the fold's test split (\"int8 gate\": recounted "
          "from the stored accuracies with the gate's drop as of 2026-11-29, `common.int8_gate_passed`). "
          "mean +- std over folds.", "",
          "| recipe | folds | float top-1 | int8 top-1 | int8 agreement | int8 gate passed | after head only | "
          "train minutes | float resize agr. (worst) | int8 resize agr. (worst) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        md.append(f"| {name} `{json.dumps(s['options'])}` | {s['folds']} | {s['float_test_accuracy']} | "
                  f"{s['int8_accuracy']} | {s['int8_agreement']} | {s['int8_gate_passed']} | {s['head_test_accuracy']} | "
                  f"{s['train_minutes']} | {s['float_resize_worst']} | {s['int8_resize_worst']} |")
    md += ["", "## What each recipe is", "", *(f"* **{name}**: {NOTES[name]}" for name in summary if name in NOTES)]
    if over_seeds:
        days = ", ".join(f"`{name}` ({day})" for name, day in BASELINES.items())
        md += ["", "## Each lever against the defaults of its day, averaged over seeds", "", f"Averaged over seeds (a recipe and its `_seedN` runs), against the defaults of {days}, two "
               "seeds each: per fold the mean over the seeds, then mean +- std of the per-fold difference (b - a):",
               "",
               "| a | b | seeds (a / b) | folds | float top-1 | int8 top-1 | int8 agreement |",
               "|---|---|---|---:|---:|---:|---:|"]
        for p in over_seeds:
            md.append(f"| {p['a']} | {p['b']} | {p['seeds']} | {p['folds']} | {p['float_test_accuracy']} | "
                      f"{p['int8_accuracy']} | {p['int8_agreement']} |")
    variants = [(name, s["resize_by_variant"]) for name, s in summary.items() if s["resize_by_variant"]]
    if variants:
        from edge.data.resize import RESIZERS

        measured = {c for _, by in variants for values in by.values() for c in values}
        columns = [c for c in (*RESIZERS, "mediapipe") if c in measured]  # "mediapipe": MediaPipe Tasks itself
        md += ["", "## Under consumers' resizes", "", "Top-1 agreement of each model with itself when the test photos are resized as consumers do "
               "(edge.data.resize; mediapipe = MediaPipe Tasks given the photo file) instead of the model's own "
               "resize (edge's Pillow bilinear unless the recipe sets `resize`); mean over folds:", "",
               "| recipe | model | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
        for name, by in variants:
            for model, values in by.items():
                md.append(f"| {name} | {model} | " + " | ".join(
                    f"{100 * values[c]:.1f}%" if c in values else "-" for c in columns) + " |")
    if pairs:
        md += ["", "## Every pair of recipes, one seed each", "", "Paired over the same folds, b - a (mean +- std of the per-fold difference; the std of two runs of "
               "the same recipe with different seeds is the run-to-run noise):", "",
               "| a | b | folds | float top-1 | int8 top-1 | int8 agreement |", "|---|---|---:|---:|---:|---:|"]
        for p in pairs:
            md.append(f"| {p['a']} | {p['b']} | {p['folds']} | {p['float_test_accuracy']} | {p['int8_accuracy']} | "
                      f"{p['int8_agreement']} |")
    md += ["", "## Every fold", "", "| recipe | fold | float | int8 | agreement | int8 gate | head only | minutes | epochs run (best) |",
           "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['recipe']} | {r['fold']} | {r['float_test_accuracy']:.1%} | {_pct(r['int8_accuracy'])} | "
                  f"{_pct(r['int8_agreement'])} | {'passed' if _passed(r) else 'failed'} | {_pct(r['head_test_accuracy'])} | {r['train_minutes']} | "
                  f"{r['epochs_run']} ({r['best_epoch']}) |")
    OUT_MD.write_text("\n".join(md) + "\n")


def _passed(row: dict) -> bool:
    return int8_gate_passed(row["int8_accuracy"], row["int8_reference_accuracy"], row["int8_verify_images"])


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _mean_std(values, pct=True) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} +- {100 * std:.1f}%" if pct else f"{mean:.1f} +- {std:.1f}"


def paired(rows: list[dict]) -> list[dict]:
    """Every pair of recipes over the folds both ran: mean +- std of the per-fold difference (b - a),
    so the fold-to-fold spread (which photos are hard) cancels out."""
    names = list(dict.fromkeys(r["recipe"] for r in rows))
    by = {(r["recipe"], r["fold"]): r for r in rows}
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            folds = [k for k in range(K) if (a, k) in by and (b, k) in by]
            if not folds:
                continue
            row = {"a": a, "b": b, "folds": len(folds)}
            for key in ("float_test_accuracy", "int8_accuracy", "int8_agreement"):
                diffs = [by[b, k][key] - by[a, k][key] for k in folds if by[b, k][key] is not None and by[a, k][key] is not None]
                row[key] = _mean_std(diffs).replace("%", " pts")
            out.append(row)
    return out


BASELINES = {"defaults_now": "stop 17", "views2": "stop 18", "ft_from_block14": "stop 19's cut, float kernels",
             "int8_exact": "stop 19: today's"}
"""The seed-averaged table compares with these recipes (TrainConfig defaults of their day, in order)."""


def seed_base(recipe: str) -> str:
    """``name_seed7`` -> ``name``: runs of one recipe with other seeds (option ``seed``)."""
    return re.sub(r"_seed\d+$", "", recipe)


def paired_over_seeds(rows: list[dict], baselines=tuple(BASELINES)) -> list[dict]:
    """Each recipe run with two seeds or more, against each of ``baselines`` (also run with several):
    per fold the mean over each one's seeds, then mean +- std of the per-fold difference. One seed per
    recipe cannot rank levers here: two seeds of the same recipe differ by about as much as any lever."""
    seeds: dict[str, set] = {}
    for r in rows:
        seeds.setdefault(seed_base(r["recipe"]), set()).add(r["recipe"])

    def fold_means(base: str, key: str) -> dict[int, float]:
        out = {}
        for k in range(K):
            values = [r[key] for r in rows if r["recipe"] in seeds[base] and r["fold"] == k and r[key] is not None]
            if len(values) == len(seeds[base]):
                out[k] = statistics.fmean(values)
        return out

    out = []
    for baseline in (b for b in baselines if len(seeds.get(b, ())) >= 2):
        for base, names in seeds.items():
            if base in baselines[:baselines.index(baseline) + 1] or len(names) < 2:
                continue
            row = {"a": baseline, "b": base, "seeds": f"{len(seeds[baseline])} / {len(names)}"}
            for key in ("float_test_accuracy", "int8_accuracy", "int8_agreement"):
                a, b = fold_means(baseline, key), fold_means(base, key)
                folds = sorted(set(a) & set(b))
                row["folds"] = len(folds)
                row[key] = _mean_std([b[k] - a[k] for k in folds]).replace("%", " pts")
            out.append(row)
    return out


def summarize(rows: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["recipe"] for r in rows):
        rs = [r for r in rows if r["recipe"] == name]
        out[name] = {"options": rs[0]["options"], "folds": len(rs),
                     "float_test_accuracy": _mean_std([r["float_test_accuracy"] for r in rs]),
                     "int8_accuracy": _mean_std([r["int8_accuracy"] for r in rs]),
                     "int8_agreement": _mean_std([r["int8_agreement"] for r in rs]),
                     "head_test_accuracy": _mean_std([r["head_test_accuracy"] for r in rs]),
                     "train_minutes": _mean_std([r["train_minutes"] for r in rs], pct=False),
                     **{f"{model}_resize_worst": _mean_std([min(r["resize_agreement"][model].values()) for r in rs
                                                            if r.get("resize_agreement")])
                        for model in ("float", "int8")},
                     "resize_by_variant": _by_variant(rs),
                     "int8_gate_passed": f"{sum(_passed(r) for r in rs)}/{len(rs)}"}
    return out


def _by_variant(rows: list[dict]) -> dict:
    """{model: {variant: mean agreement}} over the folds that measured it."""
    measured = [r["resize_agreement"] for r in rows if r.get("resize_agreement")]
    if not measured:
        return {}
    variants = {model: list(dict.fromkeys(v for m in measured for v in m[model])) for model in measured[0]}
    return {model: {v: statistics.fmean(m[model][v] for m in measured if v in m[model]) for v in vs}
            for model, vs in variants.items()}


def add_resize_agreement(recipe: str, samples, fold) -> None:
    """Measure resize agreement for rows of ``recipe`` that lack it (or its MediaPipe entry, where
    MediaPipe's venv is found), from the runs they left."""
    from edge.runtimes import mediapipe

    want_mediapipe = mediapipe.locate(cwd=ROOT).python is not None
    rows = load()
    for row in rows:
        have = row.get("resize_agreement") or {}
        if row["recipe"] != recipe or (have and (not want_mediapipe or mediapipe.KEY in have.get("float", {}))):
            continue
        run_dir = WORK / "cv" / recipe / f"fold{row['fold']}"
        int8 = next((run_dir / "export").rglob("*int8*.tflite"), None)  # rejected/ when the gate failed
        if int8 is None:
            print(f"{recipe} fold {row['fold']}: no int8 file left in {run_dir}", flush=True)
            continue
        test = [s for s, f in zip(samples, fold) if f == row["fold"]]
        row["resize_agreement"] = resize_agreement(run_dir, str(int8), test)
        print(json.dumps({"recipe": recipe, "fold": row["fold"], "resize_agreement": row["resize_agreement"]}), flush=True)
    save(rows, json.loads(OUT_JSON.read_text())["machine"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="default", help="name of the recipe in the results")
    parser.add_argument("--options", default="{}", help="JSON of edge.train.train options (TrainConfig fields)")
    parser.add_argument("--folds", default=",".join(str(k) for k in range(K)))
    parser.add_argument("--augment", choices=sorted(AUGMENTATIONS), help="replace edge's augmentation (a lever)")
    parser.add_argument("--mix", help="KIND:ALPHA, KIND one of mixup, cutmix: mix cached views (a lever)")
    parser.add_argument("--optimizer", help="ema:EPOCHS or adamw:DECAY for the fine-tune (a lever)")
    parser.add_argument("--redo", action="store_true", help="rerun folds already in the results")
    parser.add_argument("--resize-only", action="store_true",
                        help="only measure resize agreement for the recipe's folds that lack it (from their runs)")
    args = parser.parse_args()
    if not require_shared():
        return 0
    from edge.bench.report import machine_info
    from edge.data.scan import scan

    info = machine_info()
    machine = f"{info['cpu']}, {info['cores']} cores, Python {info['python']}"
    options = json.loads(args.options)
    if args.augment:
        import edge.data.pipeline

        edge.data.pipeline.augmentation = AUGMENTATIONS[args.augment]
        options_shown = {**options, "augment": args.augment}
    else:
        options_shown = options
    if args.mix:
        import edge.train.stages

        kind, alpha = args.mix.split(":")
        assert kind in MIXES, kind
        edge.train.stages.view_batches = mixed_view_batches(kind, float(alpha))
        options_shown = {**options_shown, "mix": args.mix}
    if args.optimizer:
        import edge.train.stages

        kind, value = args.optimizer.split(":")
        assert kind in ("ema", "adamw"), kind
        edge.train.stages._compile = fine_tune_optimizer(kind, float(value))
        options_shown = {**options_shown, "optimizer": args.optimizer}
    scanned = scan(FLOWERS)
    samples, labels = scanned.samples, scanned.labels
    fold = fold_assignment(samples, K, SEED)
    if args.resize_only:
        add_resize_agreement(args.recipe, samples, fold)
        return 0
    for k in (int(x) for x in args.folds.split(",")):
        rows = load()
        if not args.redo and any(r["recipe"] == args.recipe and r["fold"] == k for r in rows):
            continue
        row = run_fold(args.recipe, options, k, samples, labels, fold)
        row["options"] = options_shown
        print(json.dumps(row), flush=True)
        rows = [r for r in load() if not (r["recipe"] == args.recipe and r["fold"] == k)] + [row]
        save(rows, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
