"""onnxruntime (CPU execution provider): runs ``.onnx`` files.

One predictor for edge's own files (uint8 NHWC pixels in, probabilities out) and for foreign ones
(float or integer input, NHWC or NCHW, normalization given by the user, logits passed through a
softmax).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.errors import EdgeError, one_line
from edge.runtimes import (
    BATCH,
    empty,
    foreign_probabilities,
    foreign_spec,
    normalize,
    package_version,
    require_normalization,
    threads_label,
)
from edge.spec import ModelSpec, Normalization

NAME = "onnxruntime"
VERSION = package_version("onnxruntime")
VERIFIED_BY = f"{NAME} {VERSION}"


def session(path: Path, threads: int | None = None):
    """A CPU inference session with onnxruntime's own logging kept to errors."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise EdgeError(f"onnxruntime cannot load {path}: {one_line(exc)}.") from exc


class OrtPredictor:
    """uint8 RGB images -> probabilities through an onnxruntime session."""

    def __init__(self, path: Path, spec: ModelSpec | None, threads: int | None = None,
                 normalization: Normalization | None = None, labels: list[str] | None = None):
        """``spec`` from the file's edge metadata; None for a foreign file, described by ``labels``
        and (for float input) ``normalization``."""
        self.path = Path(path)
        self._session = session(self.path, threads)
        self._input = self._session.get_inputs()[0]
        self._float_input = "float" in self._input.type
        self._dtype = np.float32 if self._float_input else np.uint8
        self._normalization = normalization
        shape = list(self._input.shape)
        self._nchw = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
        self.foreign = spec is None
        if spec is None:
            dims = shape[2:4] if self._nchw else shape[1:3]
            if not all(isinstance(d, int) for d in dims):
                raise EdgeError(f"{path} has a dynamic input size; edge needs a fixed height and width.")
            require_normalization(self.path, normalization, self._float_input)
            spec = foreign_spec(self.path, labels or [], (int(dims[0]), int(dims[1])), normalization)
        self.spec = spec
        self.runtime = f"{NAME} {VERSION} (CPU, {threads_label(threads)})"

    def _prepare(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images)
        if self._normalization is not None and self._float_input:
            x = normalize(x, self._normalization)
        x = x.astype(self._dtype)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self._nchw else x)

    def bench_call(self, images: np.ndarray) -> Callable[[], object]:
        """The engine-only call for latency measurement: ``session.run`` on a prepared input."""
        feeds = {self._input.name: self._prepare(images)}
        run = self._session.run
        return lambda: run(None, feeds)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return empty(self.spec)
        out = np.concatenate([
            np.asarray(self._session.run(None, {self._input.name: self._prepare(images[s : s + BATCH])})[0]).reshape(
                min(BATCH, len(images) - s), -1)
            for s in range(0, len(images), BATCH)
        ]).astype(np.float32)
        return foreign_probabilities(out, self.spec, self.path) if self.foreign else out
