"""Classification metrics from labels and probabilities (NumPy only), shared by train, export and bench."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` counts samples of true class ``t`` predicted as ``p``."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest probabilities."""
    y_true = np.asarray(y_true, int)
    if len(y_true) == 0:
        return float("nan")
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == y_true[:, None], axis=1)))


def per_class(cm: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    actual = cm.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i, label in enumerate(labels)
    }


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, top-5, macro F1, per-class metrics and the confusion matrix."""
    y_true = np.asarray(y_true, int)
    y_pred = np.argmax(probs, axis=1) if len(probs) else np.zeros(0, int)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    classes = per_class(cm, labels)
    return {
        "count": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "top5": top_k_accuracy(y_true, probs, 5),
        "macro_f1": float(np.mean([c["f1"] for c in classes.values()])) if classes else float("nan"),
        "per_class": classes,
        "confusion_matrix": cm.tolist(),
    }


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> dict[str, float]:
    """How closely two models' outputs match: top-1 agreement and absolute probability differences."""
    if len(probs_a) == 0:
        return {"agreement": float("nan"), "max_prob_diff": float("nan"), "mean_prob_diff": float("nan")}
    diff = np.abs(np.asarray(probs_a, np.float64) - np.asarray(probs_b, np.float64))
    return {
        "agreement": float(np.mean(np.argmax(probs_a, 1) == np.argmax(probs_b, 1))),
        "max_prob_diff": float(diff.max()),
        "mean_prob_diff": float(diff.mean()),
    }
