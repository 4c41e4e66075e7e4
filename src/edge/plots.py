"""PNG charts a person would rather look at: confusion matrix and training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(cm: np.ndarray, labels: list[str], path: Path, title: str = "Confusion matrix") -> Path:
    plt = _pyplot()
    cm = np.asarray(cm)
    n = len(labels)
    size = max(4.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    return _save(fig, path)


def training_curves_png(stages: list[tuple[str, dict]], path: Path) -> Path:
    """Loss and accuracy per epoch, stage after stage, train and validation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for name, history in stages:
        epochs = len(history.get("loss", []))
        x = np.arange(offset + 1, offset + epochs + 1)
        for ax, key in zip(axes, ("loss", "accuracy")):
            if key in history:
                ax.plot(x, history[key], "-o", ms=3, label=f"{name} train")
            if f"val_{key}" in history:
                ax.plot(x, history[f"val_{key}"], "--o", ms=3, label=f"{name} val")
        offset += epochs
        if epochs:
            for ax in axes:
                ax.axvline(offset + 0.5, color="grey", lw=0.5)
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set(xlabel="epoch", ylabel=key, title=key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    plt = _pyplot()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
