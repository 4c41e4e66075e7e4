"""How a training run measures its model on the held-out photos (val, test): after stage 1 (the
head's own accuracy, for the summary) and at the end (metrics.json).

With the model cut for cached views (``edge.train.views.SplitModel``) the frozen part runs as the
view caches run it (``run_bottom``: LiteRT on a CPU, the same activations to float rounding at
about twice TensorFlow's speed) and the top in TensorFlow. Only the top changes after stage 1, so
each split's frozen activations (float32) are computed once and kept for the final evaluation, up
to ``KEEP_BYTES``.
"""

from __future__ import annotations

import numpy as np

from edge.data.pipeline import image_dataset
from edge.data.resize import REFERENCE

KEEP_BYTES = 2**30  # a split's frozen activations larger than this are computed again, not kept


class Evaluator:
    """``model``'s probabilities for the photos of a split (``predict``)."""

    def __init__(self, model, size, batch_size: int, cut=None, resize: str = REFERENCE):
        self.model = model
        self.size = size
        self.resize = resize  # the model's own filter (edge.data.resize.own_filter)
        self.batch_size = max(batch_size, 64)
        self.cut = cut
        self.kept: dict[str, list[np.ndarray]] = {}

    def predict(self, name: str, samples) -> np.ndarray:
        if not samples:
            return np.zeros((0, self.model.output.shape[-1]), np.float32)
        if self.cut is None:
            return np.concatenate([self.model(x, training=False).numpy() for x, _ in self._images(samples)]).astype(
                np.float32)
        chunks = self.kept.get(name)
        keep = chunks is None
        if keep:
            chunks = (self.cut.run_bottom(x) for x, _ in self._images(samples))
        probs, kept, size = [], [], 0
        for acts in chunks:
            probs.append(self.cut.top(acts, training=False).numpy())
            size += acts.nbytes
            if keep and size <= KEEP_BYTES:
                kept.append(acts)
        if keep and size <= KEEP_BYTES:
            self.kept[name] = kept
        return np.concatenate(probs).astype(np.float32)

    def _images(self, samples):
        return image_dataset(samples, self.size, self.batch_size, cache=False, resize=self.resize)

    def accuracy(self, splits) -> dict[str, float]:
        """Top-1 accuracy of val and test (those with photos)."""
        return {name: float(np.mean(self.predict(name, splits[name]).argmax(1) == _labels(splits[name])))
                for name in ("val", "test") if splits[name]}

    def report(self, splits, labels) -> dict:
        """``edge.metrics.classification_report`` of val and test (those with photos)."""
        from edge.metrics import classification_report

        return {name: classification_report(_labels(splits[name]), self.predict(name, splits[name]), labels)
                for name in ("val", "test") if splits[name]}


def _labels(samples) -> np.ndarray:
    return np.array([s.label for s in samples])
