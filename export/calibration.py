"""The representative images for int8 calibration (and QAT): drawn from the run's training split.

Images are read with ``edge.data.images.load_images`` (the training pipeline's decoder and
resize), picked class-balanced and reproducibly from the spec's seed, so the same run always
calibrates on the same images.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edge.data.images import load_images
from edge.data.resize import REFERENCE
from edge.rundir import Sample

DEFAULT_COUNT = 200


def pick(samples: list[Sample], count: int, seed: int = 0) -> list[Sample]:
    """Up to ``count`` samples, round-robin over classes (each class shuffled with ``seed``)."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    queues = []
    for label in sorted(by_class):
        items = by_class[label]
        queues.append([items[i] for i in rng.permutation(len(items))])
    chosen: list[Sample] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < count:
                chosen.append(queue[depth])
        depth += 1
    return chosen


def representative_images(samples: list[Sample], size: tuple[int, int], count: int = DEFAULT_COUNT,
                          seed: int = 0, resize: str = REFERENCE) -> np.ndarray:
    """uint8 (N, H, W, 3) calibration images, N = min(count, len(samples)), resized with ``resize``
    (the model's own filter, ``edge.data.resize.own_filter``)."""
    return load_images([s.path for s in pick(samples, count, seed)], size, resize)
