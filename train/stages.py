"""The training stages: bottleneck caching + head training, fine-tuning, and from-scratch training.

Stage 1 (pretrained weights) runs the frozen backbone once per training image, caches the pooled
features on disk, and trains the softmax head on the cache in memory (``fit_head``: one compiled
call per epoch, validation on the cached val features, best weights kept in memory, no per-epoch
checkpoint; an interrupted stage 1 retrains the head from the caches in seconds): the classic
retraining trick and the fast path on a CPU. Stage 2 unfreezes the top of the backbone
(BatchNormalization stays in inference mode) and trains it at a low learning rate, on cached views
of the frozen layers' activations (``fine_tune_on_views``, ``edge.train.views``) or, where the model
cannot be cut there or ``fine_tune_views`` is 0, on freshly augmented images (``train_images``).
With ``weights=none`` there is nothing pretrained to freeze, so one stage trains the whole network.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.data.pipeline import image_dataset, settled
from edge.fileio import atomic_path, atomic_write_text
from edge.keras_setup import keras, tf
from edge.rundir import Sample
from edge.train.checkpoint import StageCheckpoint
from edge.train.config import DECAYING_SCHEDULES, TrainConfig
from edge.train.int8_grid import Int8Grid, snap
from edge.train.model import LOGITS_LAYER, feature_extractor, head_model, set_trainable
from edge.train.progress import RichProgress
from edge.train.schedule import learning_rate
from edge.train.views import view_batches


@dataclass
class StageResult:
    name: str
    history: dict
    seconds: float
    best_epoch: int
    resumed_from: int = 0


def one_hot(num_classes: int):
    """Dataset map: integer labels -> one-hot (label smoothing needs categorical targets)."""
    return lambda x, y: (x, tf.one_hot(y, num_classes))


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """``auto``: balanced weights when the largest class has over 1.5x the images of the smallest."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    if mode == "none" or counts.min() == 0:
        return None
    if mode == "auto" and counts.max() <= 1.5 * counts.min():
        return None
    weights = counts.sum() / (num_classes * counts)
    return {i: float(w) for i, w in enumerate(weights)}


class Validate(keras.callbacks.Callback):
    """Validation at the end of every epoch, written into the logs as val_loss / val_accuracy.

    From-scratch training first refreshes the BatchNormalization moving statistics with a
    cumulative average over a few clean training batches ("precise BN"): with Keras' default
    momentum the moving statistics of a short run lag far behind the weights, and the model
    collapses to predicting one class at inference.
    """

    def __init__(self, model, val_ds, refresh_ds=None):
        super().__init__()
        self.target = model
        self.val_ds = val_ds
        self.refresh_ds = refresh_ds

    def on_epoch_end(self, epoch, logs=None):
        if self.refresh_ds is not None:
            refresh_batch_norm(self.target, self.refresh_ds)
        losses, hits, count = 0.0, 0, 0
        for x, y in self.val_ds:
            probs = self.target(x, training=False)
            losses += float(tf.reduce_sum(keras.losses.categorical_crossentropy(y, probs)))
            hits += int(tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.argmax(y, 1), tf.int32)))
            count += int(x.shape[0])
        if logs is not None and count:
            logs["val_loss"] = losses / count
            logs["val_accuracy"] = hits / count


def refresh_batch_norm(model, dataset) -> None:
    """Set every BatchNormalization's moving mean/variance to their average over ``dataset``."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    saved = [bn.momentum for bn in bns]
    try:
        for k, (x, _) in enumerate(dataset):
            for bn in bns:
                bn.momentum = k / (k + 1.0)  # cumulative average: batch k gets weight 1/(k+1)
            model(x, training=True)
    finally:
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum


def _compile(model, lr: float, config: TrainConfig, steps_per_execution: int = 1):
    optimizer = keras.optimizers.Adam(lr)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )
    return optimizer


def cache_bottlenecks(model, samples: list[Sample], size, batch_size: int, path: Path, progress, what: str,
                      resize: str):
    """Pooled backbone features of ``samples`` (computed once, stored in ``path``)."""
    labels = np.array([s.label for s in samples], np.int64)
    if path.is_file():
        with np.load(path) as cached:
            if cached["labels"].shape == labels.shape and np.array_equal(cached["labels"], labels):
                return cached["features"], labels
    extractor = feature_extractor(model)
    ds = image_dataset(samples, size, batch_size, cache=False, resize=resize)
    task = progress.add_task(f"Caching {what} bottlenecks", total=len(samples), info="")
    chunks = []
    for images, _ in ds:
        chunks.append(extractor(images, training=False).numpy().astype(np.float32))
        progress.advance(task, len(chunks[-1]))
    features = np.concatenate(chunks)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=features, labels=labels)
    return features, labels


def _run_stage(name: str, fit_model, weights_model, optimizer, train_ds, val_ds, epochs: int, directory: Path,
               config: TrainConfig, progress, weights, log_dir: Path, steps: int | None,
               refresh_ds=None, decaying: bool = False) -> StageResult:
    """Fit ``epochs`` epochs with per-epoch checkpoints. ``decaying`` (a schedule that decays to the
    end): no early stopping, the last epoch's weights are kept; otherwise ``patience`` early
    stopping with the best validation epoch's weights restored. ``train_ds`` is a dataset, or a
    function of the first epoch to run that returns one (a resumed stage starts there). With
    ``int8_exact`` the fine-tune trains on int8-rounded kernels and ends on them
    (``edge.train.int8_grid``; also a finished stage resumed: its checkpoints hold the unrounded ones)."""
    int8_exact = name == "fine_tune" and config.int8_exact
    patience = 0 if decaying else config.patience
    ckpt = StageCheckpoint(directory, weights_model, optimizer, patience=patience, restore_best=not decaying)
    start = time.perf_counter()
    if ckpt.done:
        state = ckpt.finish()
        result = StageResult(name, state["history"], 0.0, state["kept_epoch"], resumed_from=state["epoch"] + 1)
    else:
        initial_epoch = ckpt.restore()
        if initial_epoch < epochs and not (patience and ckpt.state["wait"] >= patience):
            fit_model.fit(
                train_ds(initial_epoch) if callable(train_ds) else train_ds,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                class_weight=weights,
                verbose=0,
                callbacks=[
                    *([Int8Grid(fit_model)] if int8_exact else []),
                    Validate(fit_model, val_ds, refresh_ds),
                    ckpt,
                    RichProgress(progress, name, epochs, initial_epoch, steps),
                    keras.callbacks.TensorBoard(str(log_dir / name), write_graph=False, profile_batch=0),
                ],
            )
        state = ckpt.finish()
        result = StageResult(name, state["history"], time.perf_counter() - start, state["kept_epoch"], initial_epoch)
    if int8_exact:
        snap(fit_model)
    return result


HEAD_STATE = "state.json"
HEAD_WEIGHTS = "head_weights.npz"


class HeadEarlyStopping(keras.callbacks.Callback):
    """Validation on the cached val features after every epoch (val_loss / val_accuracy in the logs),
    early stopping on val accuracy with the best head weights kept in memory and restored at the end.

    The same rule as StageCheckpoint (a strictly better val accuracy is a new best; ``patience``
    epochs without one stop the stage), without writing anything to disk: the head is a few
    thousand weights, a copy is microseconds, a checkpoint of the whole model was most of an epoch.
    """

    def __init__(self, head, x_val, y_val, patience: int):
        super().__init__()
        self.head = head
        self.x_val = tf.constant(x_val)
        self.y_val = np.asarray(y_val)
        self.patience = patience
        self.history: dict[str, list[float]] = {}
        self.best, self.best_epoch, self.best_weights, self.wait = None, -1, None, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        probs = self.head(self.x_val, training=False).numpy().astype(np.float64)
        picked = probs[np.arange(len(self.y_val)), self.y_val]
        logs["val_loss"] = float(np.mean(-np.log(np.clip(picked, 1e-7, 1.0))))
        logs["val_accuracy"] = float(np.mean(probs.argmax(1) == self.y_val))
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        if self.best is None or logs["val_accuracy"] > self.best:
            self.best, self.best_epoch, self.wait = logs["val_accuracy"], epoch, 0
            self.best_weights = self.head.get_weights()
        else:
            self.wait += 1
            if self.patience and self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.head.set_weights(self.best_weights)


def fit_head(head, x_train, y_train, x_val, y_val, config: TrainConfig, weights, progress=None, seed: int | None = None):
    """Train ``head`` (compiled) on cached features in memory; returns ``(history, best_epoch)``.

    One ``fit`` over in-memory arrays with ``steps_per_execution`` = a whole epoch, so an epoch is
    one compiled call instead of a Python step per batch; same batch size, optimizer, loss, class
    weights and early stopping rule as before, so the same results.
    """
    n = head.output.shape[-1]
    stopper = HeadEarlyStopping(head, x_val, y_val, config.patience)
    callbacks = [stopper]
    if progress is not None:
        callbacks.append(RichProgress(progress, "head", config.epochs, 0, None))
    if seed is not None:
        keras.utils.set_random_seed(seed)
    head.fit(x_train, np.eye(n, dtype=np.float32)[y_train], batch_size=config.batch_size, epochs=config.epochs,
             shuffle=True, class_weight=weights, verbose=0, callbacks=callbacks)
    return stopper.history, stopper.best_epoch


def batches_per_epoch(count: int, batch_size: int) -> int:
    """Batches in one epoch over ``count`` examples (the head's ``steps_per_execution`` too, so a head
    epoch is one compiled call)."""
    return max(1, -(-count // batch_size))


def _head_layers(model):
    return [model.get_layer(name) for name in (LOGITS_LAYER,)]


def train_head(model, splits, size, config: TrainConfig, ckpt_dir: Path, log_dir: Path, progress, strategy,
               bottlenecks=None):
    """Stage 1: cache bottlenecks of train/val once, train the head on the cache (in memory).

    ``bottlenecks``: ``((x_train, y_train), (x_val, y_val))`` already computed (from the clean views,
    ``edge.train.views.bottlenecks``); otherwise they are computed here and cached on disk.
    Resume: the bottleneck caches are on disk, the head is not checkpointed per epoch (it trains in
    seconds): an interrupted stage 1 simply trains the head again from the caches; a finished one
    left ``head/state.json`` and the head's weights, which a resumed run loads instead.
    """
    n = model.output.shape[-1]
    t0 = time.perf_counter()
    if bottlenecks is None:
        bottlenecks = [cache_bottlenecks(model, splits[part], size, config.batch_size,
                                         ckpt_dir / f"bottlenecks_{part}.npz", progress, part, config.resize_filter)
                       for part in ("train", "val")]
    (x_train, y_train), (x_val, y_val) = bottlenecks
    cache_seconds = time.perf_counter() - t0
    directory = ckpt_dir / "head"
    state_file, weights_file = directory / HEAD_STATE, directory / HEAD_WEIGHTS
    if state_file.is_file() and weights_file.is_file():
        state = json.loads(state_file.read_text())
        with np.load(weights_file) as saved:
            for layer in _head_layers(model):
                layer.set_weights([saved[f"{layer.name}_{i}"] for i in range(len(layer.weights))])
        return StageResult("head", state["history"], 0.0, state["best_epoch"], resumed_from=state["epoch"] + 1), cache_seconds
    t1 = time.perf_counter()
    with strategy.scope():
        head = head_model(model)
        _compile(head, config.learning_rate, config, steps_per_execution=batches_per_epoch(len(x_train), config.batch_size))
    history, best_epoch = fit_head(head, x_train, y_train, x_val, y_val, config, class_weights(y_train, n, config.class_weights),
                                   progress)
    _write_head_logs(log_dir / "head", history)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights_file) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{f"{layer.name}_{i}": w for layer in _head_layers(model) for i, w in enumerate(layer.get_weights())})
    epochs_run = len(history.get("loss", []))
    atomic_write_text(state_file, json.dumps({"epoch": epochs_run - 1, "best_epoch": best_epoch, "history": history,
                                              "done": True}, indent=1))
    return StageResult("head", history, time.perf_counter() - t1 + cache_seconds, best_epoch), cache_seconds


def _write_head_logs(directory: Path, history: dict) -> None:
    """The head's per-epoch curves for TensorBoard, as Keras' callback names them, written once."""
    for part, prefix in (("train", ""), ("validation", "val_")):
        writer = tf.summary.create_file_writer(str(directory / part))
        with writer.as_default():
            for key in ("loss", "accuracy"):
                for epoch, value in enumerate(history.get(prefix + key, [])):
                    tf.summary.scalar(f"epoch_{key}", value, step=epoch)
        writer.close()


def train_images(name: str, model, splits, size, config: TrainConfig, ckpt_dir: Path, log_dir: Path, progress,
                 strategy, epochs: int, lr: float) -> StageResult:
    """Fine-tuning (or from-scratch training) of ``model`` on (augmented) images."""
    n = model.output.shape[-1]
    steps = batches_per_epoch(len(splits["train"]), config.batch_size)
    decaying = name == "fine_tune" and config.fine_tune_schedule in DECAYING_SCHEDULES
    if name == "fine_tune":
        lr = learning_rate(config.fine_tune_schedule, lr, steps, epochs)
    with strategy.scope():
        set_trainable(model, config.backbone, "fine_tune" if name == "fine_tune" else "all",
                      start_layer=config.start_layer)
        optimizer = _compile(model, lr, config)
    own = config.resize_filter
    train_ds = image_dataset(splits["train"], size, config.batch_size, shuffle=True, augment=config.augment,
                             seed=config.seed, resize=own).map(one_hot(n))
    val_ds = image_dataset(splits["val"], size, max(config.batch_size, 64), resize=own).map(one_hot(n))
    labels = np.array([s.label for s in splits["train"]])
    weights = class_weights(labels, n, config.class_weights)
    refresh_ds = None
    if name == "scratch":
        refresh_ds = image_dataset(splits["train"], size, config.batch_size, shuffle=True, seed=config.seed,
                                   resize=own)
        refresh_ds = refresh_ds.take(max(1, 512 // config.batch_size))
    return _run_stage(name, model, model, optimizer, train_ds, val_ds, epochs, ckpt_dir / name, config, progress,
                      weights, log_dir, steps, refresh_ds, decaying)


def fine_tune_on_views(model, cut, caches, paths: list[Path], config: TrainConfig, ckpt_dir: Path, log_dir: Path,
                       progress, strategy) -> StageResult:
    """Stage 2 on cached activations (``edge.train.views``): every epoch trains only the top
    (``cut.top``) on one cached view of the train split (``paths``); validation on val's clean view."""
    n = model.output.shape[-1]
    epochs = config.fine_tune_epochs
    train_cache, val_cache = caches["train"], caches["val"]
    steps = batches_per_epoch(len(train_cache.labels), config.batch_size)
    with strategy.scope():
        set_trainable(model, config.backbone, "fine_tune", start_layer=config.start_layer)
        lr = learning_rate(config.fine_tune_schedule, config.fine_tune_learning_rate, steps, epochs)
        optimizer = _compile(cut.top, lr, config)

    def train_ds(first_epoch: int):
        return view_batches(paths, train_cache.labels, n, config.batch_size, config.seed, first_epoch, epochs)

    x_val = tf.cast(val_cache.load(0, mmap=False), tf.float32)
    val_ds = settled(tf.data.Dataset.from_tensor_slices((x_val, tf.one_hot(val_cache.labels, n)))
                     .batch(max(config.batch_size, 64)))
    weights = class_weights(train_cache.labels, n, config.class_weights)
    return _run_stage("fine_tune", cut.top, model, optimizer, train_ds, val_ds, epochs, ckpt_dir / "fine_tune", config,
                      progress, weights, log_dir, steps, decaying=config.fine_tune_schedule in DECAYING_SCHEDULES)
