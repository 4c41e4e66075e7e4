"""tf.data input pipelines: parallel decode + resize (the shared PIL loader), caching, prefetch,
and augmentation on the training path only (applied outside the model, so exports never carry it).

Every pipeline edge builds runs with a fixed parallelism (one call per core) and tf.data's
autotuning off (``settled``). With autotuning on, dropping a pipeline waited for tf.data's
autotuning thread to wake up by itself, and it sleeps in doubling intervals: a pass of 22 s over
the view caches ended at 41.7 s, a 70-s fine-tune about 55 s late (benchmarks/results/train_time.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.data.images import load_image, load_variants
from edge.data.resize import REFERENCE
from edge.rundir import Sample


def augmentation(seed: int):
    """Random flip, rotation (about +-11 degrees), zoom, contrast and brightness on 0..255 images."""
    from edge.keras_setup import keras

    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.03, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
            layers.RandomContrast(0.1, seed=seed + 3),
            layers.RandomBrightness(0.1, value_range=(0.0, 255.0), seed=seed + 4),
        ],
        name="augmentation",
    )


PREFETCH = 2  # batches made ahead of the consumer


def parallel_calls() -> int:
    """Elements a pipeline's map works on at once: one per core."""
    return os.cpu_count() or 1


def settled(ds):
    """``ds`` with tf.data's autotuning off (see the module docstring)."""
    from edge.keras_setup import tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def drawn_resize(variants: Sequence[str], seed: int, index, own: str = REFERENCE) -> str:
    """The resize filter of image ``index`` in a pass that draws from ``variants`` with ``seed``
    (the model's own, ``own``, without variants): a function of (seed, index) alone, so a pass is reproducible."""
    return variants[np.random.default_rng([seed, int(index)]).integers(len(variants))] if variants else own


def image_dataset(samples: list[Sample], size: tuple[int, int], batch_size: int, *, shuffle: bool = False,
                  augment: bool = False, seed: int = 0, cache: bool = True, resize_variants: Sequence[str] = (),
                  resize: str = REFERENCE):
    """Batched ``(float32 images 0..255, int labels)`` for ``samples``, resized with ``resize`` (the
    model's own filter, ``edge.data.resize.own_filter``).

    ``resize_variants`` (names in ``edge.data.resize.RESIZERS``): each image is resized with one of
    them instead of the model's own filter, drawn from ``(seed, image index)``, so a pass is reproducible.
    """
    from edge.keras_setup import tf

    height, width = size
    paths = np.array([s.path for s in samples], dtype=object).astype(str)
    labels = np.array([s.label for s in samples], dtype=np.int32)
    variants = tuple(resize_variants)

    def _load(path, index):
        return load_image(path.decode("utf-8"), (height, width), drawn_resize(variants, seed, index, resize))

    def _decode(path, label, index):
        image = tf.numpy_function(_load, [path, index], tf.uint8, stateful=False)
        image.set_shape((height, width, 3))
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels, np.arange(len(samples), dtype=np.int64)))
    ds = ds.map(_decode, num_parallel_calls=parallel_calls(), deterministic=True)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=parallel_calls())
    if augment:
        aug = augmentation(seed)
        ds = ds.map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=parallel_calls())
    return settled(ds.prefetch(PREFETCH))


@dataclass(frozen=True)
class View:
    """One way of showing the training photos to the model: ``seed`` drives the augmentation (if
    ``augment``) and the draw of each photo's resize filter from ``resize_variants`` (if any; else the
    model's own filter, ``resize``)."""

    seed: int
    augment: bool = False
    resize_variants: tuple[str, ...] = ()
    resize: str = REFERENCE


def view_dataset(samples: list[Sample], size: tuple[int, int], batch_size: int, views: Sequence[View]):
    """Batches of ``samples`` in order, as a tuple of one float32 batch (0..255) per view in ``views``.

    Each photo is decoded once for all the views (and resized once per distinct filter); a view's
    images are what ``image_dataset(..., augment=view.augment, seed=view.seed,
    resize_variants=view.resize_variants, resize=view.resize)`` would give.
    """
    from edge.keras_setup import tf

    height, width = size
    views = tuple(views)
    paths = np.array([s.path for s in samples], dtype=object).astype(str)

    def _load(path, index):
        filters = [drawn_resize(view.resize_variants, view.seed, index, view.resize) for view in views]
        resized = load_variants(path.decode("utf-8"), (height, width), set(filters))
        return np.stack([resized[name] for name in filters])

    def _decode(path, index):
        images = tf.numpy_function(_load, [path, index], tf.uint8, stateful=False)
        images.set_shape((len(views), height, width, 3))
        return images

    augmenters = [augmentation(view.seed) if view.augment else None for view in views]

    def _views(batch):
        batch = tf.cast(batch, tf.float32)
        return tuple(aug(batch[:, i], training=True) if aug is not None else batch[:, i]
                     for i, aug in enumerate(augmenters))

    ds = tf.data.Dataset.from_tensor_slices((paths, np.arange(len(samples), dtype=np.int64)))
    ds = ds.map(_decode, num_parallel_calls=parallel_calls(), deterministic=True).batch(batch_size)
    return settled(ds.map(_views, num_parallel_calls=parallel_calls()).prefetch(PREFETCH))
