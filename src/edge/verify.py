"""Format-agnostic verification: does a candidate model agree with its reference on real images?

Takes two Predictors (or their outputs), the images and their true labels, and returns top-1
agreement, both accuracies, the accuracy drop in points and the probability differences, and which
answers changed: how many, how many of those the reference was unsure of (its top-1 probability
less than ``UNSURE_MARGIN`` above its second), and how many it had wrong anyway. Export's gate and
``edge bench`` share this code; the budget a result must meet lives with each format.

Why the breakdown: over the 500 flowers-mini photos of a 5-fold cross-validation, 17 of the 18
answers post-training int8 changed, and 50 of the 54 that another app's resize or MediaPipe Tasks
changed, were on the 13% of photos with a reference margin under 0.6, where the float model was
right only half the time (``benchmarks/results/flip_margins.md``). A changed answer on a confident
photo is the one to worry about.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge import metrics

UNSURE_MARGIN = 0.5  # a reference top-1 less than this (probability) above its second is an unsure answer


@dataclass(frozen=True)
class Verification:
    """How a candidate compares with the reference on ``count`` labelled images."""

    count: int
    agreement: float  # fraction of images with the same top-1 class, 0..1
    accuracy: float  # candidate top-1 accuracy, 0..1
    reference_accuracy: float
    drop_pts: float  # (reference_accuracy - accuracy) * 100, from the counts of right answers
    max_prob_diff: float
    mean_prob_diff: float
    changed: int = 0  # images whose top-1 differs from the reference's
    changed_unsure: int = 0  # ... of them, where the reference's margin was under UNSURE_MARGIN
    changed_reference_wrong: int = 0  # ... of them, where the reference's top-1 was wrong

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def drop_pts(reference_right: int, right: int, count: int) -> float:
    """Accuracy points lost, from the counts of right answers: one photo of 100 is exactly 1.0, so it
    meets a 1-point budget. (The difference of the two accuracies, 0.86 - 0.85, is 1.0000000000000009
    points, which failed such artifacts until 2026-11-29.)"""
    return (int(reference_right) - int(right)) * 100.0 / count if count else float("nan")


def compare(reference_probs: np.ndarray, candidate_probs: np.ndarray, labels: np.ndarray) -> Verification:
    """Compare two models' probabilities for the same images with true ``labels`` (class indices)."""
    reference_probs = np.asarray(reference_probs)
    candidate_probs = np.asarray(candidate_probs)
    labels = np.asarray(labels, int)
    if reference_probs.shape != candidate_probs.shape:
        raise ValueError(f"output shapes differ: reference {reference_probs.shape}, candidate {candidate_probs.shape}")
    close = metrics.agreement(reference_probs, candidate_probs)
    ref_top1 = reference_probs.argmax(1)
    top1 = candidate_probs.argmax(1)
    changed = ref_top1 != top1
    accuracy = metrics.top_k_accuracy(labels, candidate_probs, 1)
    reference_accuracy = metrics.top_k_accuracy(labels, reference_probs, 1)
    return Verification(
        count=int(len(labels)),
        agreement=close["agreement"],
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        drop_pts=drop_pts((ref_top1 == labels).sum(), (top1 == labels).sum(), len(labels)),
        max_prob_diff=close["max_prob_diff"],
        mean_prob_diff=close["mean_prob_diff"],
        changed=int(changed.sum()),
        changed_unsure=int((changed & (margins(reference_probs) < UNSURE_MARGIN)).sum()),
        changed_reference_wrong=int((changed & (ref_top1 != labels)).sum()),
    )


def margins(probs: np.ndarray) -> np.ndarray:
    """Each row's top-1 probability minus its second (1.0 for a single-class output)."""
    probs = np.asarray(probs, np.float64)
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def verify(reference, candidate, images: np.ndarray, labels: np.ndarray) -> Verification:
    """Run both Predictors on ``images`` (uint8, N x H x W x 3) and compare them."""
    return compare(reference(images), candidate(images), labels)
