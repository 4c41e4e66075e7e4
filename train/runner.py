"""``train()``: scan -> split -> build -> stage 1 (cached bottlenecks) -> stage 2 (fine-tune) -> run dir.

Everything a later step needs is written to the run directory; ``spec.json`` is written last, so
an interrupted run is never mistaken for a finished one, and running the same command again (or
``resume=True``) continues from the last completed epoch.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.backbones import get_backbone, resolve_weights
from edge.console import console, progress
from edge.data.scan import ScannedData, scan
from edge.data.split import min_per_class, stratified_split
from edge.errors import EdgeError
from edge.fileio import atomic_path, atomic_write_text
from edge.rundir import (CHECKPOINT_DIR, CONFUSION_PNG, CURVES_PNG, HISTORY_FILE, LABELS_FILE, LOG_DIR,
                         METRICS_FILE, MODEL_FILE, REPORT_FILE, SPLITS, is_finished, write_split)
from edge.spec import SPEC_FILE, ModelSpec
from edge.train.config import TrainConfig

CONFIG_FILE = "config.json"


@dataclass
class TrainResult:
    run_dir: Path
    spec: ModelSpec
    metrics: dict
    history: dict[str, dict] = field(default_factory=dict)  # stage -> {metric: [per epoch]}
    seconds: float = 0.0
    resumed: bool = False

    @property
    def model_path(self) -> Path:
        return self.run_dir / MODEL_FILE


def train(data: str | Path, run_dir: str | Path | None = None, config: TrainConfig | None = None, *,
          force: bool = False, resume: bool = False, runs_root: str | Path = "runs", **options) -> TrainResult:
    """Train a classifier on ``data`` (class folders, pre-split folders, or ``csv=``) into a run dir.

    ``options`` are TrainConfig fields (backbone, weights, image_size, epochs, ...).
    """
    config = config or TrainConfig()
    for key, value in options.items():
        if not hasattr(config, key):
            raise TypeError(f"train() got an unknown option {key!r}")
        setattr(config, key, value)
    started = time.perf_counter()
    backbone = get_backbone(config.backbone)
    size = config.image_size or backbone.default_size
    image_size = (size, size)
    resolve_weights(backbone, config.weights, size, config.alpha)  # bad --weights fails before any work

    with progress(transient=True) as bar:
        scanned = scan(data, config.csv, min_per_class(config.split), progress=bar)
    _print_scan(scanned)
    run = _choose_run_dir(scanned, run_dir, runs_root, config, force, resume)
    ckpt_dir = run / CHECKPOINT_DIR
    resumed = (ckpt_dir / CONFIG_FILE).is_file()
    if resumed:
        console.print(f"[yellow]Resuming[/] the unfinished run in {run}.")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ckpt_dir / CONFIG_FILE, json.dumps(config.resume_key(), indent=1))

    splits = scanned.presplit if scanned.presplit else stratified_split(scanned.samples, config.split, config.seed)
    splits = {name: splits.get(name, []) for name in SPLITS}
    if not splits["val"]:
        raise EdgeError("The validation split is empty; use a split with a non-zero validation part.")
    for name in SPLITS:
        write_split(run, name, splits[name], scanned.labels)
    atomic_write_text(run / REPORT_FILE, json.dumps(scanned.to_report(), indent=1))

    from edge.keras_setup import keras
    from edge.train.model import build_model
    from edge.train.stages import train_head, train_images
    from edge.train.strategy import choose_placement

    keras.utils.set_random_seed(config.seed)
    placement = choose_placement(config.devices, config.mixed_precision)
    strategy = placement.strategy
    console.print(f"Training on {placement.description}.")
    with strategy.scope():
        model, normalization = build_model(config.backbone, len(scanned.labels), image_size, config.weights,
                                           config.alpha, config.dropout)
    pretrained = config.weights not in ("none", "", None)
    stages, timings, stage_metrics = [], {}, {}
    log_dir = run / LOG_DIR
    with progress() as bar:
        if pretrained:
            from edge.train.model import set_trainable

            set_trainable(model, config.backbone, "head")
            result, cache_seconds = train_head(model, splits, image_size, config, ckpt_dir, log_dir, bar, strategy)
            timings["bottleneck_cache_s"] = round(cache_seconds, 2)
            stages.append(result)
            if config.fine_tune_epochs > 0:  # without fine-tuning the final evaluation covers stage 1
                stage_metrics["head"] = _quick_eval(model, splits, image_size, config.batch_size)
                stages.append(train_images("fine_tune", model, splits, image_size, config, ckpt_dir, log_dir, bar,
                                           strategy, config.fine_tune_epochs, config.fine_tune_learning_rate))
        else:
            stages.append(train_images("scratch", model, splits, image_size, config, ckpt_dir, log_dir, bar,
                                       strategy, config.epochs, config.learning_rate))
    for stage in stages:
        timings[f"{stage.name}_s"] = round(stage.seconds, 2)

    keras.mixed_precision.set_global_policy("float32")
    metrics = _evaluate(model, splits, image_size, config.batch_size, scanned.labels)
    metrics["stages"] = {**stage_metrics, stages[-1].name: {k: metrics[k]["accuracy"] for k in ("val", "test") if k in metrics}}
    metrics["timings"] = {**timings, "total_s": round(time.perf_counter() - started, 2)}
    metrics["best_epoch"] = {s.name: s.best_epoch for s in stages}

    spec = ModelSpec(
        name=run.name,
        backbone=config.backbone,
        labels=list(scanned.labels),
        input_size=image_size,
        normalization=normalization,
        alpha=config.alpha,
        weights=config.weights if config.weights in ("imagenet", "none") else Path(config.weights).name,
        seed=config.seed,
        split={"fractions": list(config.split), "layout": scanned.layout, "data_root": str(scanned.root),
               "counts": {name: len(splits[name]) for name in SPLITS},
               "files": {name: f"split/{name}.csv" for name in SPLITS}},
        training={**config.to_dict(), "placement": placement.description},
        versions=_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    _write_outputs(run, model, spec, metrics, stages)
    result = TrainResult(run, spec, metrics, {s.name: s.history for s in stages}, time.perf_counter() - started, resumed)
    _print_summary(result, scanned)
    return result


def _predict(model, samples, size, batch_size):
    from edge.data.pipeline import image_dataset

    if not samples:
        return np.zeros((0, model.output.shape[-1]), np.float32)
    ds = image_dataset(samples, size, max(batch_size, 64), cache=False)
    return np.concatenate([model(x, training=False).numpy() for x, _ in ds]).astype(np.float32)


def _quick_eval(model, splits, size, batch_size) -> dict:
    out = {}
    for name in ("val", "test"):
        if splits[name]:
            probs = _predict(model, splits[name], size, batch_size)
            out[name] = float(np.mean(probs.argmax(1) == np.array([s.label for s in splits[name]])))
    return out


def _evaluate(model, splits, size, batch_size, labels) -> dict:
    from edge.metrics import classification_report

    metrics = {}
    for name in ("val", "test"):
        if splits[name]:
            probs = _predict(model, splits[name], size, batch_size)
            metrics[name] = classification_report(np.array([s.label for s in splits[name]]), probs, labels)
    return metrics


def _write_outputs(run: Path, model, spec: ModelSpec, metrics: dict, stages) -> None:
    from edge.plots import confusion_matrix_png, training_curves_png

    with atomic_path(run / MODEL_FILE) as tmp:
        model.save(tmp)
    atomic_write_text(run / LABELS_FILE, "".join(f"{label}\n" for label in spec.labels))
    atomic_write_text(run / METRICS_FILE, json.dumps(metrics, indent=1))
    atomic_write_text(run / HISTORY_FILE, _history_csv(stages))
    held_out = "test" if "test" in metrics else "val"
    confusion_matrix_png(metrics[held_out]["confusion_matrix"], spec.labels, run / CONFUSION_PNG,
                         f"{spec.name}: {held_out} split, accuracy {metrics[held_out]['accuracy']:.1%}")
    training_curves_png([(s.name, s.history) for s in stages], run / CURVES_PNG)
    spec.save(run)  # last: marks the run finished
    shutil.rmtree(run / CHECKPOINT_DIR, ignore_errors=True)


def _history_csv(stages) -> str:
    keys = ["loss", "accuracy", "val_loss", "val_accuracy"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["stage", "epoch", *keys])
    for stage in stages:
        for epoch in range(len(stage.history.get("loss", []))):
            writer.writerow([stage.name, epoch + 1, *(f"{stage.history[k][epoch]:.6f}" if k in stage.history else ""
                                                    for k in keys)])
    return buf.getvalue()


def _choose_run_dir(scanned: ScannedData, run_dir, runs_root, config: TrainConfig, force: bool, resume: bool) -> Path:
    """The run directory to use; never overwrites a finished run without ``force``."""
    key = json.dumps(config.resume_key(), indent=1)
    if run_dir is None:
        base = Path(runs_root) / _slug(scanned.root.name)
        candidate, n = base, 1
        while candidate.exists():
            if not force and _unfinished_with(candidate, key):
                return candidate
            if force and _is_edge_run(candidate):
                break
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        run_dir = candidate
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise EdgeError(f"Run directory {run} exists and is not a directory.")
    if run.is_dir() and any(run.iterdir()):
        if force:
            if not _is_edge_run(run):
                raise EdgeError(f"{run} is not an edge run directory; refusing to delete it even with --force.")
            shutil.rmtree(run)
        elif is_finished(run):
            raise EdgeError(f"{run} already holds a finished run; pass --force to replace it or choose another --run-dir.")
        elif _unfinished_with(run, key):
            pass  # resume
        elif (run / CHECKPOINT_DIR / CONFIG_FILE).is_file():
            raise EdgeError(
                f"{run} holds an unfinished run with different options; use the same options to resume it or --force to start over."
            )
        elif not _is_edge_run(run):
            raise EdgeError(f"{run} is not empty and is not an edge run directory; choose another --run-dir.")
    elif resume:
        raise EdgeError(f"There is no unfinished run in {run} to resume.")
    run.mkdir(parents=True, exist_ok=True)
    return run


def _unfinished_with(run: Path, key: str) -> bool:
    cfg = run / CHECKPOINT_DIR / CONFIG_FILE
    return not is_finished(run) and cfg.is_file() and cfg.read_text() == key


def _is_edge_run(run: Path) -> bool:
    return (run / SPEC_FILE).is_file() or (run / CHECKPOINT_DIR).is_dir() or (run / "split").is_dir()


def _slug(name: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return slug or "run"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("edge", "tensorflow", "tf-keras", "numpy", "pillow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _print_scan(scanned: ScannedData) -> None:
    from rich.table import Table

    counts = scanned.counts()
    columns = next(iter(counts.values())).keys()
    console.print(f"[bold]Dataset[/] {scanned.root} ({scanned.layout} layout, {len(scanned.samples)} images)")
    table = Table()
    table.add_column("class")
    for c in columns:
        table.add_column("images" if c == "all" else c, justify="right")
    for label, row in counts.items():
        table.add_row(label, *(str(row[c]) for c in columns))
    console.print(table)
    if scanned.skipped:
        console.print(f"[yellow]warning:[/] skipped {len(scanned.skipped)} file(s) (listed in the run's {REPORT_FILE}):")
        for s in scanned.skipped[:10]:
            console.print(f"  {s.path}: {s.reason}", highlight=False)
        if len(scanned.skipped) > 10:
            console.print(f"  ... and {len(scanned.skipped) - 10} more")


def _print_summary(result: TrainResult, scanned: ScannedData) -> None:
    from rich.table import Table

    m = result.metrics
    console.print("[bold]Training summary[/]")
    table = Table(show_header=False)
    table.add_row("run directory", str(result.run_dir))
    table.add_row("backbone", f"{result.spec.backbone} ({result.spec.weights}), {result.spec.input_size[0]}x{result.spec.input_size[1]}")
    table.add_row("images", ", ".join(f"{k} {v}" for k, v in result.spec.split["counts"].items()))
    for stage, values in m["stages"].items():
        table.add_row(f"after {stage}", ", ".join(f"{k} acc {v:.1%}" for k, v in values.items()))
    for split in ("val", "test"):
        if split in m:
            table.add_row(f"{split}", f"accuracy {m[split]['accuracy']:.1%}, top-5 {m[split]['top5']:.1%}, macro F1 {m[split]['macro_f1']:.3f}")
    table.add_row("time", ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in m["timings"].items()))
    if scanned.skipped:
        table.add_row("skipped files", str(len(scanned.skipped)))
    console.print(table)
