"""Fine-tuning on cached activations: the frozen part of the backbone runs once per augmented view.

Fine-tuning unfreezes only the top of the backbone (MobileNetV2: from ``block_14_expand``, 25% of
its multiply-adds). Run on images, every epoch pays the frozen 75% again for every photo. Here the
model is cut where the trainable part begins (``split_model``): the frozen part turns each
training photo into activations once per *view* (view 0 the photo as it is, views 1.. augmented,
each with its own seed; with ``resize_augment`` each photo of an augmented view is also resized
with a filter drawn from ``edge.data.resize.RESIZERS``), all views in one pass that decodes each
photo once, stored on disk as float16 (a resumed run reuses the views on disk), and every epoch
trains only the top on one view (epoch ``e`` uses view ``e mod views``, in a fresh order).
Stage 1's bottleneck features are the clean view run through the frozen top, so the backbone's
expensive part sees each photo ``views`` times in the whole run, instead of once per epoch.
On a machine without a GPU the frozen part runs as an fp32 LiteRT model (XNNPACK; ``frozen_runner``),
about 1.8x TensorFlow's speed for MobileNetV2's bottom on 2 cores, with the same activations to
float rounding (the weights are the same fp32 numbers).

The two halves share the model's layers (and weights): training the top trains the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from edge.data.pipeline import View, settled, view_dataset
from edge.data.resize import REFERENCE
from edge.fileio import atomic_path
from edge.keras_setup import keras, tf

log = logging.getLogger(__name__)

VIEWS_DIR = "views"
# A view cache larger than this (all views of the train split, float16) uses fewer views; below one
# view's worth fine-tuning runs on images (stages.train_images).
MAX_CACHE_BYTES = 8 * 2**30


@dataclass
class SplitModel:
    """``bottom``: pixels -> the activations entering the first trainable layer; ``top``: those
    activations -> class probabilities; ``features``: those activations -> pooled features."""

    bottom: object
    top: object
    features: object

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.bottom.output.shape[1:])

    @property
    def bytes_per_view(self) -> int:
        return int(np.prod(self.shape)) * 2  # float16

    @cached_property
    def run_bottom(self) -> Callable[[object], np.ndarray]:
        """``frozen_runner(self)``, built once (a LiteRT conversion takes about 2 s) for every view of every split."""
        return frozen_runner(self)


def split_model(model, start_layer: str, features_layer: str) -> SplitModel | None:
    """Cut ``model`` before ``start_layer`` (and everything after it in the layer order).

    None when the part from ``start_layer`` on reads more than one tensor of the frozen part (a skip
    connection across the cut): then there is no single activation to cache.
    """
    names = [layer.name for layer in model.layers]
    if start_layer not in names:
        return None
    start = names.index(start_layer)
    made_by = {}
    for i, layer in enumerate(model.layers):
        for tensor in tf.nest.flatten(layer.get_output_at(0)):
            made_by[id(tensor)] = i
    crossing = []
    for layer in model.layers[start:]:
        for tensor in tf.nest.flatten(layer.get_input_at(0)):
            if made_by.get(id(tensor), start) < start and all(tensor is not t for t in crossing):
                crossing.append(tensor)
    if len(crossing) != 1:
        return None
    cut = crossing[0]
    return SplitModel(bottom=keras.Model(model.input, cut, name="frozen_part"),
                      top=keras.Model(cut, model.output, name="trainable_top"),
                      features=keras.Model(cut, model.get_layer(features_layer).output, name="frozen_top"))


def plan(model, config, start_layer: str, features_layer: str, train_count: int) -> tuple[SplitModel, int] | None:
    """``(cut model, views)`` when fine-tuning can run on cached views, else None (fine-tune on images):
    ``fine_tune_views`` is 0, the cut crosses a skip connection, or not one view fits the budget.
    Without augmentation every view would be the same photo: one view."""
    if not config.fine_tune_epochs or not config.fine_tune_views:
        return None
    cut = split_model(model, start_layer, features_layer)
    if cut is None:
        return None
    views = views_that_fit(config.fine_tune_views if config.augment else 1, train_count, cut.bytes_per_view)
    return (cut, views) if views else None


def views_that_fit(requested: int, count: int, bytes_per_view: int, budget: int = MAX_CACHE_BYTES) -> int:
    """How many of ``requested`` views of ``count`` images fit the cache budget (0: not even one)."""
    return max(0, min(requested, budget // max(1, count * bytes_per_view)))


class ViewCache:
    """The frozen part's activations of one split, one ``.npy`` (float16) per view, in ``directory``.

    Views are written aside and renamed when their pass is complete, so a resumed run computes
    only the views not on disk. A cache of another split (other images) is replaced.
    """

    def __init__(self, directory: Path, split: SplitModel, samples, size, batch_size: int, seed: int, name: str,
                 resize_variants: tuple[str, ...] = (), resize: str = REFERENCE):
        self.directory = Path(directory)
        self.resize_variants = resize_variants  # augmented views draw each image's resize filter from these
        self.resize = resize  # the model's own filter (the clean view's; edge.data.resize.own_filter)
        self.split = split
        self.samples = samples
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.name = name
        self.labels = np.array([s.label for s in samples], np.int64)

    def path(self, view: int) -> Path:
        return self.directory / f"{self.name}-view{view}.npy"

    def _drop_if_stale(self) -> None:
        """Views on disk belong to this split only if its labels file matches; otherwise start over."""
        key = self.directory / f"{self.name}-labels.npy"
        if key.is_file() and np.array_equal(np.load(key), self.labels):
            return
        for old in self.directory.glob(f"{self.name}-view*.npy"):
            old.unlink()
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(key) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.labels)

    def ensure(self, views: int, progress=None) -> list[Path]:
        """Compute the views not on disk yet (in one pass); return the paths of views ``0..views-1``."""
        self._drop_if_stale()
        missing = [v for v in range(views) if not self.path(v).is_file()]
        if missing:
            task = None
            if progress is not None:
                what = f"Caching {self.name}" + (f" ({len(missing)} views)" if len(missing) > 1 else "")  # short: 80 cols
                task = progress.add_task(what, total=len(missing) * len(self.samples), info="")
            self._compute(missing, progress, task)
        return [self.path(v) for v in range(views)]

    def view(self, view: int) -> View:
        """View 0 is the photo as the model will see it; view v > 0 is augmented with its own seed."""
        return View(seed=self.seed + 1000 * view, augment=view > 0,
                    resize_variants=self.resize_variants if view > 0 else (), resize=self.resize)

    def _compute(self, views: list[int], progress, task) -> None:
        """``views`` in one pass over the photos, each decoded once for all of them. Every view is
        written aside (memory-mapped, so a big split never sits in memory) and renamed at the end."""
        shape = (len(self.samples), *self.split.shape)
        with ExitStack() as files:
            temps = [files.enter_context(atomic_path(self.path(v))) for v in views]
            if not self.samples:  # nothing to map
                for tmp in temps:
                    np.save(tmp, np.empty(shape, np.float16))
                return
            outs = [np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape) for tmp in temps]
            start = 0
            for batch in view_dataset(self.samples, self.size, self.batch_size, [self.view(v) for v in views]):
                for out, images in zip(outs, batch):
                    acts = self.split.run_bottom(images)
                    out[start:start + len(acts)] = acts
                start += len(acts)
                if task is not None:
                    progress.advance(task, len(acts) * len(views))
            for out in outs:
                out.flush()
            del out, outs  # unmapped before the renames

    def load(self, view: int, mmap: bool = True) -> np.ndarray:
        return np.load(self.path(view), mmap_mode="r" if mmap else None)


def frozen_runner(split: SplitModel) -> Callable[[object], np.ndarray]:
    """How the frozen part (``split.bottom``) turns a batch of images into activations: with a GPU
    visible, TensorFlow; otherwise an fp32 LiteRT conversion of it (XNNPACK, every core), which is
    what CPUs run fastest. Falls back to TensorFlow if the conversion fails (logged: speed only)."""
    bottom = split.bottom
    if not tf.config.list_logical_devices("GPU"):
        try:
            return _LiteRTBottom(bottom)
        except Exception as exc:  # noqa: BLE001  (a speed-up only: TensorFlow computes the same activations)
            log.info("The frozen layers run in TensorFlow (LiteRT conversion failed: %s)", exc)
    return lambda images: bottom(images, training=False).numpy()


class _LiteRTBottom:
    """``split.bottom`` as an fp32 LiteRT interpreter, its batch size following the input."""

    def __init__(self, bottom):
        from edge.logs import native_stderr_quiet
        from edge.runtimes.litert import interpreter
        from edge.runtimes.tensorflow import thread_count, variables_holder

        h, w = bottom.input_shape[1:3]
        fn = tf.function(lambda image: bottom(image, training=False), autograph=False,
                         input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                                    variables_holder(bottom))
        with native_stderr_quiet():  # the converter's native lines
            flatbuffer = converter.convert()
        self.interpreter = interpreter(flatbuffer, thread_count())
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = None

    def __call__(self, images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if len(images) != self.batch:
            from edge.logs import native_stderr_quiet

            self.interpreter.resize_tensor_input(self.input, list(images.shape))
            with native_stderr_quiet():  # XNNPACK's "Created ... delegate" line comes with the tensors
                self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input, images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output)


def pooled_features(split: SplitModel, activations: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Stage 1's bottleneck features: cached activations through the frozen top, pooled."""
    chunks = [split.features(tf.cast(activations[i:i + batch_size], tf.float32), training=False).numpy()
              for i in range(0, len(activations), batch_size)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, split.features.output.shape[-1]),
                                                                              np.float32)


def bottlenecks(cut: SplitModel, caches: dict, views: int, progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stage 1's ``(features, labels)`` of train and val from their clean views. Every view the
    fine-tune will read is computed here, in the same pass as the clean one (one decode per photo)."""
    out = []
    for part, count in (("train", views), ("val", 1)):
        cache = caches[part]
        cache.ensure(count, progress)
        out.append((pooled_features(cut, cache.load(0)), cache.labels))
    return out


def view_batches(paths: list[Path], labels: np.ndarray, num_classes: int, batch_size: int, seed: int,
                 first_epoch: int, epochs: int):
    """A dataset of ``(activations, one-hot)`` batches for epochs ``first_epoch..epochs-1`` in a row:
    epoch ``e`` reads view ``e % len(paths)`` in its own shuffled order (a function of seed and e
    alone, so a resumed run sees what an uninterrupted one would have).

    The generator does all the work (a batch is a 2-MB copy, about 1% of a training step), in a
    pipeline without autotuning (``edge.data.pipeline.settled``): with an autotuned map and prefetch
    behind it, the end of ``fit`` waited about 55 s for tf.data's autotuning thread.
    """
    count = len(labels)
    shape = np.load(paths[0], mmap_mode="r").shape[1:]
    eye = np.eye(num_classes, dtype=np.float32)

    def batches():
        for epoch in range(first_epoch, epochs):
            acts = np.load(paths[epoch % len(paths)], mmap_mode="r")
            order = np.random.default_rng([seed, epoch]).permutation(count)
            for i in range(0, count, batch_size):
                idx = np.sort(order[i:i + batch_size])
                yield acts[idx].astype(np.float32), eye[labels[idx]]

    spec = (tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((None, num_classes), tf.float32))
    return settled(tf.data.Dataset.from_generator(batches, output_signature=spec))
