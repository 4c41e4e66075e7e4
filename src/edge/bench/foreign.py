"""Models without edge metadata (a .tflite or .onnx from elsewhere), run with user-given facts.

Such a model says nothing about its classes or preprocessing, so the user supplies them:
``--labels`` (a file with one label per line, or a comma list) and, for a float input,
``--mean``/``--std`` (the model sees ``(pixel - mean) / std``). Integer inputs get the pixels
through the tensor's own quantization. The input size is read from the model's input tensor;
NCHW ONNX inputs are transposed. Outputs that are not probabilities are passed through softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.spec import ModelSpec, Normalization


@dataclass
class ForeignOptions:
    labels: list[str] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


def parse_labels(value: str | None) -> list[str] | None:
    """``--labels``: a file (one label per line) or a comma-separated list."""
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        labels = [item.strip() for item in value.split(",") if item.strip()]
    if not labels:
        raise EdgeError(f"--labels {value} holds no labels.")
    return labels


def parse_triple(value: str | None, option: str) -> tuple[float, float, float] | None:
    """``--mean 127.5`` or ``--mean 123.7,116.3,103.5`` (RGB, pixel units 0..255)."""
    if value is None or value == "":
        return None
    try:
        numbers = [float(v) for v in str(value).split(",")]
    except ValueError:
        raise EdgeError(f"{option} must be one number or three comma-separated numbers, not '{value}'.") from None
    if len(numbers) == 1:
        numbers *= 3
    if len(numbers) != 3:
        raise EdgeError(f"{option} must be one number or three comma-separated numbers, not '{value}'.")
    return tuple(numbers)


def _softmax_if_needed(out: np.ndarray) -> np.ndarray:
    out = out.astype(np.float32).reshape(len(out), -1)
    if out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-2):
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class _Foreign:
    spec: ModelSpec
    runtime: str

    def _normalize(self, images: np.ndarray) -> np.ndarray:
        norm = self.spec.normalization
        return ((images.astype(np.float32) - np.float32(norm.mean)) / np.float32(norm.std)).astype(np.float32)

    def bench_call(self, images: np.ndarray):
        """Prepared input, then a no-argument callable that only runs the engine (for latency)."""
        prepared = self._prepare(np.asarray(images))
        return lambda: self._run(prepared)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        out = np.concatenate([self._run(self._prepare(images[i : i + 16])) for i in range(0, len(images), 16)])
        probs = _softmax_if_needed(out)
        if probs.shape[1] != self.spec.num_classes:
            raise EdgeError(f"{self.path} outputs {probs.shape[1]} scores but --labels names {self.spec.num_classes} classes.")
        return probs


class ForeignTFLite(_Foreign):
    def __init__(self, path: Path, threads: int | None, labels: list[str], norm: Normalization | None):
        from ai_edge_litert.interpreter import Interpreter

        from edge.export.tflite import _litert_version

        self.path = path
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
        except (ValueError, RuntimeError) as exc:
            raise EdgeError(f"LiteRT cannot load {path}: {str(exc).splitlines()[0][:160]}.") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._float = np.dtype(self._input["dtype"]) == np.float32
        _require_norm(path, norm, self._float)
        h, w = (int(v) for v in self._input["shape"][1:3])
        self.spec = _spec(path, labels, (h, w), norm)
        self._batch = None
        self.runtime = f"LiteRT {_litert_version()} (XNNPACK, {threads or 'default'} threads)"

    def _prepare(self, images):
        if len(images) != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [len(images), *self.spec.input_shape])
            self._interpreter.allocate_tensors()
            self._batch = len(images)
        if self._float:
            return self._normalize(images)
        dtype = np.dtype(self._input["dtype"])
        scale, zero = self._input["quantization"]
        values = self._normalize(images) if self.spec.normalization and not self.spec.normalization.is_identity else images
        info = np.iinfo(dtype)
        return np.clip(np.round(values.astype(np.float32) / (scale or 1.0) + zero), info.min, info.max).astype(dtype)

    def _run(self, prepared):
        self._interpreter.set_tensor(self._input["index"], prepared)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])
        if np.dtype(self._output["dtype"]) != np.float32:
            scale, zero = self._output["quantization"]
            raw = (raw.astype(np.float32) - zero) * (scale or 1.0)
        return raw


class ForeignONNX(_Foreign):
    def __init__(self, path: Path, threads: int | None, labels: list[str], norm: Normalization | None):
        import onnxruntime as ort

        from edge.export.onnx import _ort_version

        self.path = path
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise EdgeError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:160]}.") from exc
        inp = self._session.get_inputs()[0]
        self._name = inp.name
        self._float = "float" in inp.type
        self._dtype = np.float32 if self._float else np.uint8
        shape = list(inp.shape)
        self._nchw = len(shape) == 4 and shape[1] == 3
        dims = shape[2:4] if self._nchw else shape[1:3]
        if not all(isinstance(d, int) for d in dims):
            raise EdgeError(f"{path} has a dynamic input size; bench needs a fixed height and width.")
        _require_norm(path, norm, self._float)
        self.spec = _spec(path, labels, (int(dims[0]), int(dims[1])), norm)
        self.runtime = f"onnxruntime {_ort_version()} (CPU, {threads or 'default'} threads)"

    def _prepare(self, images):
        x = self._normalize(images) if self._float else images.astype(self._dtype)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self._nchw else x)

    def _run(self, prepared):
        return self._session.run(None, {self._name: prepared})[0]


def _require_norm(path: Path, norm: Normalization | None, is_float: bool) -> None:
    if is_float and norm is None:
        raise EdgeError(f"{path} carries no edge metadata and takes float input; pass --mean and --std "
                        "(the model sees (pixel - mean) / std, e.g. --mean 127.5 --std 127.5).")


def _spec(path: Path, labels: list[str], size: tuple[int, int], norm: Normalization | None) -> ModelSpec:
    return ModelSpec(name=path.stem, backbone="unknown", labels=list(labels), input_size=size,
                     normalization=norm or Normalization(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), weights="unknown")


def load(ref, threads: int | None, options: ForeignOptions | None):
    options = options or ForeignOptions()
    if not options.labels:
        raise EdgeError(f"{ref.path} carries no edge metadata; pass --labels (a file or a comma list) and, "
                        "for a float input, --mean and --std.")
    norm = None
    if options.mean is not None or options.std is not None:
        norm = Normalization(mean=options.mean or (0.0, 0.0, 0.0), std=options.std or (1.0, 1.0, 1.0))
    cls = ForeignTFLite if ref.format == "tflite" else ForeignONNX
    return cls(ref.path, threads, options.labels, norm)
