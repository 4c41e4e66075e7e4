"""LiteRT (ai-edge-litert, XNNPACK): runs ``.tflite`` files.

One predictor for edge's own files and for foreign ones: pixels are fed as the input tensor asks
(float32 as they are, or quantized with the tensor's own scale/zero point), a ``normalization``
is applied first only for a foreign float model whose user said how it normalizes, and quantized
outputs are dequantized. ``kind()`` tells fp32/fp16/dynamic/int8 from the tensors themselves.
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

NAME = "LiteRT"
VERSION = package_version("ai-edge-litert")
VERIFIED_BY = f"{NAME} {VERSION}"


def interpreter(model: Path | bytes, threads: int | None = None):
    """A LiteRT interpreter of a ``.tflite`` file (or a flatbuffer in memory) with its default
    delegates (XNNPACK); one sentence on failure."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.logs import native_stderr_quiet

    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    try:
        with native_stderr_quiet():  # LiteRT's native "Created TensorFlow Lite XNNPACK delegate" line
            interp = Interpreter(**source, num_threads=threads or None)
            interp.allocate_tensors()
        return interp
    except (ValueError, RuntimeError) as exc:
        what = "a model in memory" if isinstance(model, bytes) else model
        raise EdgeError(f"LiteRT cannot load {what}: {one_line(exc)}.") from exc


def io_details(path: Path) -> dict:
    """Input/output dtypes and quantization of a .tflite file (for reports and tests)."""
    interp = interpreter(path, 1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return {
        "input_dtype": np.dtype(inp["dtype"]).name,
        "input_quantization": [float(inp["quantization"][0]), int(inp["quantization"][1])],
        "output_dtype": np.dtype(out["dtype"]).name,
        "output_quantization": [float(out["quantization"][0]), int(out["quantization"][1])],
    }


class LiteRTPredictor:
    """uint8 RGB images -> probabilities through a LiteRT interpreter."""

    def __init__(self, path: Path, spec: ModelSpec | None, threads: int | None = None,
                 normalization: Normalization | None = None, labels: list[str] | None = None):
        """``spec`` from the file's edge metadata; None for a foreign file, described by ``labels``
        and (for float input) ``normalization``."""
        self.path = Path(path)
        self.threads = threads
        self._interpreter = interpreter(self.path, threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._float_input = np.dtype(self._input["dtype"]) == np.float32
        self._normalization = normalization
        self.foreign = spec is None
        if spec is None:  # a foreign model: the size comes from its input tensor, the rest from the user
            require_normalization(self.path, normalization, self._float_input)
            h, w = (int(v) for v in self._input["shape"][1:3])
            spec = foreign_spec(self.path, labels or [], (h, w), normalization)
        self.spec = spec
        self._batch: int | None = None
        self.runtime = f"{NAME} {VERSION} (XNNPACK, {threads_label(threads)})"

    def kind(self) -> str:
        """fp32 | fp16 | dynamic | int8, read from the interpreter's tensors."""
        if not self._float_input:
            return "int8"
        dtypes = {np.dtype(t["dtype"]) for t in self._interpreter.get_tensor_details()}
        if np.dtype(np.int8) in dtypes:
            return "dynamic"
        if np.dtype(np.float16) in dtypes:
            return "fp16"
        return "fp32"

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self.spec.input_shape])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def _feed(self, images: np.ndarray) -> np.ndarray:
        values = images.astype(np.float32)
        if self._normalization is not None:
            values = normalize(values, self._normalization)
        if self._float_input:
            return values
        dtype = self.input_dtype
        scale, zero = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(values / (scale or 1.0) + zero), info.min, info.max).astype(dtype)

    def _read(self, raw: np.ndarray) -> np.ndarray:
        if np.dtype(self._output["dtype"]) == np.float32:
            return raw.astype(np.float32)
        scale, zero = self._output["quantization"]
        return ((raw.astype(np.float32) - zero) * (scale or 1.0)).astype(np.float32)

    def bench_call(self, images: np.ndarray) -> Callable[[], object]:
        """The input set once; each call is ``invoke()`` + reading the output (a bare interpreter loop)."""
        self._resize(len(images))
        self._interpreter.set_tensor(self._input["index"], np.ascontiguousarray(self._feed(images)))
        invoke, get_tensor, index_out = self._interpreter.invoke, self._interpreter.get_tensor, self._output["index"]

        def run():
            invoke()
            return get_tensor(index_out)

        return run

    def raw(self, images: np.ndarray) -> np.ndarray:
        """The model's dequantized outputs (N, C) for uint8 images."""
        images = np.asarray(images)
        out = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            self._resize(len(chunk))
            self._interpreter.set_tensor(self._input["index"], self._feed(chunk))
            self._interpreter.invoke()
            out.append(self._read(self._interpreter.get_tensor(self._output["index"])).reshape(len(chunk), -1))
        return np.concatenate(out)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return empty(self.spec)
        out = self.raw(images)
        return foreign_probabilities(out, self.spec, self.path) if self.foreign else out
