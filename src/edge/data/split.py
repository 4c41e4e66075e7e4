"""Stratified, seeded train/val/test split. Same files + same seed -> the same split, always."""

from __future__ import annotations

import math

import numpy as np

from edge.errors import EdgeError
from edge.rundir import SPLITS, Sample


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"80/10/10"`` or ``"0.8,0.1,0.1"`` -> fractions summing to 1."""
    parts = [p for p in text.replace(",", "/").split("/") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise EdgeError(f"Split '{text}' is not of the form TRAIN/VAL/TEST, e.g. 80/10/10.") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0 or values[0] == 0:
        raise EdgeError(f"Split '{text}' needs three non-negative parts with a non-zero train part, e.g. 80/10/10.")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def min_per_class(fractions: tuple[float, float, float]) -> int:
    """Fewest images a class needs so that every non-empty split gets at least one."""
    return sum(1 for f in fractions if f > 0)


def stratified_split(samples: list[Sample], fractions: tuple[float, float, float], seed: int) -> dict[str, list[Sample]]:
    """Split every class by ``fractions`` (train/val/test), shuffled with ``seed``.

    Val and test get at least one image per class when their fraction is non-zero; the order of
    ``samples`` does not matter (they are sorted by path first).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    by_label: dict[int, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: (s.label, s.path)):
        by_label.setdefault(s.label, []).append(s)
    for label in sorted(by_label):
        items = by_label[label]
        order = rng.permutation(len(items))
        n = len(items)
        n_val = max(1, math.floor(n * fractions[1] + 0.5)) if fractions[1] > 0 else 0
        n_test = max(1, math.floor(n * fractions[2] + 0.5)) if fractions[2] > 0 else 0
        if n - n_val - n_test < 1:
            raise EdgeError(f"Class {label} has too few images ({n}) for the split.")
        shuffled = [items[i] for i in order]
        out["val"] += shuffled[:n_val]
        out["test"] += shuffled[n_val:n_val + n_test]
        out["train"] += shuffled[n_val + n_test:]
    return out
