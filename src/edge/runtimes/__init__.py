"""The runtimes layer: the engines that run a model here, behind one ``Predictor`` surface.

LiteRT (``litert``), onnxruntime (``ort``), TensorFlow (``tensorflow``) and the Core ML reference
executor (``coreml``, with the MIL executor in ``mil/``). Export's gate, ``edge bench`` and
``edge predict`` load every model through these modules -- edge artifacts through their format's
``load`` (which reads the spec from the artifact), models without edge metadata through
``load_foreign`` with the labels and normalization the user gives. ``mediapipe`` is the exception
that is not a ``Predictor``: MediaPipe Tasks, in its own venv, run as an app would run a TFLite file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.spec import ModelSpec, Normalization

BATCH = 32  # images per engine call when running a whole image set


class Predictor(Protocol):
    """A loaded model: uint8 RGB images (N, H, W, 3) at the spec's input size -> probabilities (N, C).

    Runtime predictors also offer ``bench_call(images) -> Callable[[], object]``: the input
    prepared once, and a call that does only the engine's own work (what ``edge bench`` times).
    """

    spec: ModelSpec
    runtime: str  # e.g. "LiteRT 2.3.0 (XNNPACK, 2 threads)"; names the engine in reports

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


class Timed(Protocol):
    def bench_call(self, images: np.ndarray) -> Callable[[], object]: ...


def batched(images: np.ndarray, batch: int = BATCH) -> Iterator[np.ndarray]:
    """Yield consecutive slices of ``images`` of at most ``batch`` items."""
    for start in range(0, len(images), batch):
        yield images[start : start + batch]


def package_version(name: str) -> str:
    """The installed version of a distribution ("?" when it is not installed)."""
    try:
        return pkg_metadata.version(name)
    except pkg_metadata.PackageNotFoundError:
        return "?"


def threads_label(threads: int | None) -> str:
    return f"{threads or 'default'} threads"


def softmax_if_needed(out: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities pass through; logits go through a softmax."""
    out = out.astype(np.float32).reshape(len(out), -1)
    if out.size == 0 or (out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-2)):
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def empty(spec: ModelSpec) -> np.ndarray:
    return np.zeros((0, spec.num_classes), np.float32)


IDENTITY = Normalization(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def normalize(values: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(pixel - mean) / std`` per channel, float32."""
    return ((values.astype(np.float32) - np.float32(norm.mean)) / np.float32(norm.std)).astype(np.float32)


def foreign_spec(path: Path, labels: list[str], size: tuple[int, int], norm: Normalization | None) -> ModelSpec:
    """The ModelSpec of a model without edge metadata, from what the user and the model say."""
    return ModelSpec(name=Path(path).stem, backbone="unknown", labels=list(labels), input_size=size,
                     normalization=norm or IDENTITY, weights="unknown")


def require_normalization(path: Path, norm: Normalization | None, float_input: bool) -> None:
    """A foreign float-input model needs the user to say how it normalizes pixels."""
    if float_input and norm is None:
        from edge.errors import EdgeError

        raise EdgeError(f"{path} carries no edge metadata and takes float input; pass --mean and --std "
                        "(the model sees (pixel - mean) / std, e.g. --mean 127.5 --std 127.5).")


def foreign_probabilities(out: np.ndarray, spec: ModelSpec, path: Path) -> np.ndarray:
    """A foreign model's outputs as probabilities, checked against the number of labels given."""
    probs = softmax_if_needed(out)
    if probs.shape[1] != spec.num_classes:
        from edge.errors import EdgeError

        raise EdgeError(f"{path} outputs {probs.shape[1]} scores but --labels names {spec.num_classes} classes.")
    return probs
