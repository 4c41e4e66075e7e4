"""Format-agnostic verification: does a candidate model agree with its reference on real images?

Takes two Predictors (or their outputs), the images and their true labels, and returns top-1
agreement, both accuracies, the accuracy drop in points and the probability differences. Export's
gate and ``edge bench`` share this code; the budget a result must meet lives with each format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge import metrics


@dataclass(frozen=True)
class Verification:
    """How a candidate compares with the reference on ``count`` labelled images."""

    count: int
    agreement: float  # fraction of images with the same top-1 class, 0..1
    accuracy: float  # candidate top-1 accuracy, 0..1
    reference_accuracy: float
    drop_pts: float  # (reference_accuracy - accuracy) * 100
    max_prob_diff: float
    mean_prob_diff: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def compare(reference_probs: np.ndarray, candidate_probs: np.ndarray, labels: np.ndarray) -> Verification:
    """Compare two models' probabilities for the same images with true ``labels`` (class indices)."""
    reference_probs = np.asarray(reference_probs)
    candidate_probs = np.asarray(candidate_probs)
    labels = np.asarray(labels, int)
    if reference_probs.shape != candidate_probs.shape:
        raise ValueError(f"output shapes differ: reference {reference_probs.shape}, candidate {candidate_probs.shape}")
    close = metrics.agreement(reference_probs, candidate_probs)
    accuracy = metrics.top_k_accuracy(labels, candidate_probs, 1)
    reference_accuracy = metrics.top_k_accuracy(labels, reference_probs, 1)
    return Verification(
        count=int(len(labels)),
        agreement=close["agreement"],
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        drop_pts=(reference_accuracy - accuracy) * 100.0,
        max_prob_diff=close["max_prob_diff"],
        mean_prob_diff=close["mean_prob_diff"],
    )


def verify(reference, candidate, images: np.ndarray, labels: np.ndarray) -> Verification:
    """Run both Predictors on ``images`` (uint8, N x H x W x 3) and compare them."""
    return compare(reference(images), candidate(images), labels)
