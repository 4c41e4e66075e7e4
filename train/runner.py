"""``train()``: scan -> split -> build -> stage 1 (cached bottlenecks) -> stage 2 (fine-tune) -> run dir.

Everything a later step needs is written to the run directory; ``spec.json`` is written last, so
an interrupted run is never mistaken for a finished one, and running the same command again (or
``resume=True``) continues from the last completed epoch. Options are validated (TrainConfig)
and the output folder is probed before any work; where the run is written, and how a finished
run is replaced without losing it first, is ``workspace``'s business.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge.backbones import get_backbone, resolve_weights
from edge.console import console, progress
from edge.data.scan import ScannedData, scan
from edge.data.split import min_per_class, stratified_split
from edge.errors import EdgeError
from edge.fileio import atomic_path, atomic_write_text, check_creatable_dir, os_reason
from edge.rundir import (
    CHECKPOINT_DIR,
    CONFUSION_PNG,
    CURVES_PNG,
    HISTORY_FILE,
    LABELS_FILE,
    LOG_DIR,
    METRICS_FILE,
    MODEL_FILE,
    REPORT_FILE,
    SPLITS,
    write_split,
)
from edge.spec import ModelSpec
from edge.train.config import TrainConfig
from edge.train.workspace import CONFIG_FILE, Workspace, open_workspace


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C during training. ``resumable``: the unfinished run in ``run_dir`` can be continued;
    otherwise a replacement (``force``) was being built and was discarded, the old run is intact."""

    def __init__(self, run_dir: Path, resumable: bool):
        super().__init__()
        self.run_dir = run_dir
        self.resumable = resumable


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
          force: bool = False, resume: bool = False, runs_root: str | Path = "runs", quiet: bool = False,
          **options) -> TrainResult:
    """Train a classifier on ``data`` (class folders, pre-split folders, or ``csv=``) into a run dir.

    ``options`` are TrainConfig fields (backbone, weights, image_size, epochs, ...); they override
    ``config``, which is copied, never changed. ``quiet`` prints nothing (no tables, no progress).
    """
    config = with_options(config, options)
    say = _Say(quiet)
    started = time.perf_counter()
    backbone = get_backbone(config.backbone)
    size = config.image_size or backbone.default_size
    resolve_weights(backbone, config.weights, size, config.alpha)  # bad --weights fails before any work
    # The output folder is probed now, created (and probed again) by the workspace after the scan.
    check_creatable_dir(Path(run_dir).expanduser() if run_dir is not None else Path(runs_root), "output folder")

    scan_options = {"allow_outside": config.csv_allow_outside}
    with say.progress(transient=True) as bar:
        scanned = scan(data, config.csv, min_per_class(config.split), progress=bar, **scan_options)
    if not quiet:
        _print_scan(scanned)
    splits = scanned.presplit if scanned.presplit else stratified_split(scanned.samples, config.split, config.seed)
    splits = {name: splits.get(name, []) for name in SPLITS}
    if not splits["val"]:
        raise EdgeError("The validation split is empty; use a split with a non-zero validation part.")
    try:
        workspace = open_workspace(scanned.root.name, run_dir, runs_root, config.resume_key(), force, resume)
    except OSError as exc:  # an unreadable run directory, a vanished parent, ...
        where = exc.filename or run_dir or runs_root
        raise EdgeError(f"Cannot use {where} as the run directory ({os_reason(exc)}).") from None
    try:
        result = _train_into(workspace, scanned, splits, config, (size, size), say, started)
    except KeyboardInterrupt:
        workspace.discard()
        raise TrainInterrupted(workspace.final, resumable=not workspace.replacing) from None
    except OSError as exc:
        workspace.discard()
        where = exc.filename or workspace.final
        raise EdgeError(f"Training into {workspace.final} failed on {where} ({os_reason(exc)}).") from exc
    except BaseException:
        workspace.discard()
        raise
    if not quiet:
        _print_summary(result, scanned)
    return result


def with_options(config: TrainConfig | None, options: dict) -> TrainConfig:
    """A validated copy of ``config`` (or of the defaults) with ``options`` applied."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in options:
        if key not in names:
            raise TypeError(f"train() got an unknown option {key!r}")
    config = config if config is not None else TrainConfig()
    return dataclasses.replace(config, **{"extra": dict(config.extra), **options})  # replace() validates


class _Say:
    """console.print and progress bars, or nothing at all when quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, *args, **kwargs) -> None:
        if not self.quiet:
            console.print(*args, **kwargs)

    def progress(self, transient: bool = False):
        bar = progress(transient=transient)
        bar.disable = self.quiet
        return bar


def _train_into(workspace: Workspace, scanned: ScannedData, splits: dict, config: TrainConfig,
                image_size: tuple[int, int], say: _Say, started: float) -> TrainResult:
    run = workspace.work
    ckpt_dir = run / CHECKPOINT_DIR
    resumed = workspace.resumed
    if resumed:
        say(f"[yellow]Resuming[/] the unfinished run in {workspace.final}.")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ckpt_dir / CONFIG_FILE, json.dumps(config.resume_key(), indent=1))
    for name in SPLITS:
        write_split(run, name, splits[name], scanned.labels)
    atomic_write_text(run / REPORT_FILE, json.dumps(scanned.to_report(), indent=1))

    from edge.keras_setup import keras
    from edge.train.evaluation import Evaluator
    from edge.train.model import build_model
    from edge.train.stages import train_images
    from edge.train.strategy import choose_placement

    keras.utils.set_random_seed(config.seed)
    placement = choose_placement(config.devices, config.mixed_precision)
    strategy = placement.strategy
    say(f"Training on {placement.description}.")
    with strategy.scope():
        model, normalization = build_model(config.backbone, len(scanned.labels), image_size, config.weights,
                                           config.alpha, config.dropout)
    pretrained = config.weights not in ("none", "", None)
    stages, timings, stage_metrics = [], {}, {}
    evaluator = Evaluator(model, image_size, config.batch_size, resize=config.resize_filter)
    log_dir = run / LOG_DIR
    with say.progress() as bar:
        if pretrained:
            stages, evaluator = _pretrained_stages(model, splits, image_size, config, ckpt_dir, log_dir, bar,
                                                   strategy, say, timings, stage_metrics)
        else:
            stages.append(train_images("scratch", model, splits, image_size, config, ckpt_dir, log_dir, bar,
                                       strategy, config.epochs, config.learning_rate))
    for stage in stages:
        timings[f"{stage.name}_s"] = round(stage.seconds, 2)

    keras.mixed_precision.set_global_policy("float32")
    metrics = evaluator.report(splits, scanned.labels)
    metrics["stages"] = {**stage_metrics, stages[-1].name: {k: metrics[k]["accuracy"] for k in ("val", "test") if k in metrics}}
    metrics["timings"] = {**timings, "total_s": round(time.perf_counter() - started, 2)}
    metrics["best_epoch"] = {s.name: s.best_epoch for s in stages}

    spec = ModelSpec(
        name=workspace.final.absolute().name,
        backbone=config.backbone,
        labels=list(scanned.labels),
        input_size=image_size,
        normalization=normalization,
        resize=config.resize,
        alpha=config.alpha,
        weights=config.weights if config.weights in ("imagenet", "none") else Path(config.weights).name,
        seed=config.seed,
        split={"fractions": list(config.split), "layout": scanned.layout, "data_root": str(scanned.root),
               "counts": {name: len(splits[name]) for name in SPLITS},
               "files": {name: f"split/{name}.csv" for name in SPLITS}},
        training={**config.to_dict(), "placement": placement.description},
        versions=_versions(),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        run_id=workspace.identity.run_id,
    )
    _write_outputs(run, model, spec, metrics, stages)
    workspace.commit()
    return TrainResult(workspace.final, spec, metrics, {s.name: s.history for s in stages},
                       time.perf_counter() - started, resumed)


def _pretrained_stages(model, splits, image_size, config: TrainConfig, ckpt_dir: Path, log_dir: Path, bar, strategy,
                       say, timings: dict, stage_metrics: dict) -> tuple[list, object]:
    """Stage 1 (head on cached bottlenecks) and stage 2 (fine-tuning): on cached views of the frozen
    layers' activations (edge.train.views) when the cut allows, else on images. Returns the stages
    and the Evaluator of the run (through the cut when there is one)."""
    from edge.data.resize import RESIZERS
    from edge.train import views
    from edge.train.evaluation import Evaluator
    from edge.train.model import FEATURES_LAYER, set_trainable
    from edge.train.stages import fine_tune_on_views, train_head, train_images

    set_trainable(model, config.backbone, "head")
    start_layer = config.start_layer
    with strategy.scope():  # the cut models train under the strategy (the top is fitted, its metrics mirrored)
        planned = views.plan(model, config, start_layer, FEATURES_LAYER, len(splits["train"]))
    caches = bottlenecks = cut = None
    start = time.perf_counter()
    if planned is not None:
        cut, view_count = planned
        variants = tuple(RESIZERS) if config.resize_augment else ()
        caches = {part: views.ViewCache(ckpt_dir / views.VIEWS_DIR, cut, splits[part], image_size, config.batch_size,
                                        config.seed, part, variants, config.resize_filter)
                  for part in ("train", "val")}
        bottlenecks = views.bottlenecks(cut, caches, view_count, bar)  # every view, in one pass
        timings["views_cache_s"] = round(time.perf_counter() - start, 2)
    evaluator = Evaluator(model, image_size, config.batch_size, cut, config.resize_filter)
    head, cache_seconds = train_head(model, splits, image_size, config, ckpt_dir, log_dir, bar, strategy, bottlenecks)
    if caches is None:
        timings["bottleneck_cache_s"] = round(cache_seconds, 2)
    if config.fine_tune_epochs == 0:  # without fine-tuning the final evaluation covers stage 1
        return [head], evaluator
    stage_metrics["head"] = evaluator.accuracy(splits)
    if caches is None:
        return [head, train_images("fine_tune", model, splits, image_size, config, ckpt_dir, log_dir, bar, strategy,
                                   config.fine_tune_epochs, config.fine_tune_learning_rate)], evaluator
    paths = [caches["train"].path(v) for v in range(view_count)]
    if view_count < config.fine_tune_views and config.augment:
        say(f"[yellow]note:[/] {view_count} cached view(s) of the training images instead of {config.fine_tune_views}: "
            f"more would not fit the cache's {views.MAX_CACHE_BYTES / 2**30:.0f} GiB.")
    return [head, fine_tune_on_views(model, cut, caches, paths, config, ckpt_dir, log_dir, bar, strategy)], evaluator


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
    for conflict in scanned.conflicts:
        console.print(f"[yellow]warning:[/] {conflict.describe()}", highlight=False)


def _print_summary(result: TrainResult, scanned: ScannedData) -> None:
    from rich.table import Table

    m = result.metrics
    console.print("[bold]Training summary[/]")
    table = Table(show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a long path or weights file wraps whole, never cut with "..."
    table.add_row("run directory", str(result.run_dir))
    spec = result.spec
    table.add_row("backbone", f"{spec.backbone} ({spec.weights}), {spec.input_size[0]}x{spec.input_size[1]}, "
                              f"resize {spec.resize}")
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
