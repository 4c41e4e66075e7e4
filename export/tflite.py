"""The TFLite format: fp32, fp16, dynamic-range and full-int8 ``.tflite`` files, run with LiteRT.

All kinds are converted from one serving ``tf.function`` (raw RGB pixels 0..255 -> probabilities).
fp32/fp16/dynamic files take float32 pixels 0..255 (TFLite's float models only take float
input). Full int8 files take uint8 pixels as they are (default) or int8 ``pixel - 128``
(``int8_io="int8"``): the representative set always contains one image spanning 0..255, so the
input quantization is exactly scale 1 with zero point 0 / -128 and the stored value is the pixel.
Their output is the quantized probability (dequantized by the predictor).

Standard TFLite metadata (labels file, normalization) and edge's key/values are added by
``edge.export.tflite_metadata``. ``load`` runs a file with LiteRT's interpreter (XNNPACK).
"""

from __future__ import annotations

import time
from importlib import metadata as pkg_metadata
from pathlib import Path

import numpy as np

from edge import contract
from edge.errors import EdgeError
from edge.export.base import COMPRESSED_BUDGET, FP16_BUDGET, FP32_BUDGET, Artifact, ExportOptions, Format, path_size
from edge.fileio import atomic_write_bytes
from edge.spec import ModelSpec

QUANTIZE_KINDS = ("fp32", "fp16", "dynamic", "int8")
INT8_IO_TYPES = ("uint8", "int8")
BATCH = 32


def _litert_version() -> str:
    try:
        return pkg_metadata.version("ai-edge-litert")
    except pkg_metadata.PackageNotFoundError:
        return "?"


def range_anchor(size: tuple[int, int]) -> np.ndarray:
    """One image whose pixels span exactly 0..255, so the int8 input scale is 1 (raw pixels)."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = 255
    return img


def _converter(model, quantize: str, calibration: np.ndarray | None, options: ExportOptions):
    from edge.export.keras_model import serving_function, variables_holder
    from edge.keras_setup import tf

    serve = serving_function(model, "float32")
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], variables_holder(model)
    )
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        if calibration is None or len(calibration) == 0:
            raise EdgeError("Full-int8 TFLite export needs calibration images (the run's training split or --data).")
        if options.int8_io not in INT8_IO_TYPES:
            raise EdgeError(f"int8 input/output type must be one of {', '.join(INT8_IO_TYPES)}, not '{options.int8_io}'.")
        images = np.concatenate([range_anchor(calibration.shape[1:3])[None], np.asarray(calibration, np.uint8)])

        def representative():
            for img in images:
                yield [img[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        io_type = tf.uint8 if options.int8_io == "uint8" else tf.int8
        if options.float_layers:
            # Mixed precision: the named ops stay float, so float kernels must be allowed.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    elif quantize != "fp32":
        raise EdgeError(f"TFLite has no '{quantize}' quantization; choose from {', '.join(QUANTIZE_KINDS)}.")
    return converter, representative if quantize == "int8" else None


def convert(model, quantize: str, calibration: np.ndarray | None = None, options: ExportOptions | None = None) -> bytes:
    """The bare ``.tflite`` flatbuffer (no metadata) for one quantization kind."""
    options = options or ExportOptions()
    converter, representative = _converter(model, quantize, calibration, options)
    try:
        if quantize == "int8" and options.float_layers:
            return _convert_mixed(converter, representative, options.float_layers)
        return converter.convert()
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"TFLite conversion ({quantize}) failed: {_first_line(exc)}.") from exc


def _convert_mixed(converter, representative, float_layers: tuple[str, ...]) -> bytes:
    """Full int8 except the ops named in ``float_layers`` (TFLite tensor names), which stay float."""
    from edge.keras_setup import tf

    debug_options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_layers))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative, debug_options=debug_options
    )
    return debugger.get_nondebug_quantized_model()


def layer_errors(model, calibration: np.ndarray, options: ExportOptions | None = None, top: int = 5) -> list[tuple[str, float]]:
    """The int8 ops whose outputs differ most from float (name, RMSE / quantization scale), worst first.

    Used by ``--int8-auto`` to choose which layers to keep in float.
    """
    from edge.keras_setup import tf

    options = options or ExportOptions()
    converter, representative = _converter(model, "int8", calibration, ExportOptions(int8_io=options.int8_io,
                                                                                    float_layers=("_",)))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
    debugger.run()
    import csv
    import io

    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    scored = []
    for row in rows:
        try:
            scale = float(row["scale"])
            rmse = float(row["mean_squared_error"]) ** 0.5
        except (KeyError, ValueError):
            continue
        if scale > 0:
            scored.append((row["tensor_name"], rmse / scale))
    scored.sort(key=lambda item: -item[1])
    return scored[:top]


def export(model, spec: ModelSpec, quantize: str, out_path: Path, calibration: np.ndarray | None = None,
           options: ExportOptions | None = None) -> Artifact:
    """Convert ``model`` to ``out_path`` with standard TFLite metadata and edge's key/values."""
    from edge.export import tflite_metadata

    options = options or ExportOptions()
    start = time.perf_counter()
    flatbuffer = convert(model, quantize, calibration, options)
    with_metadata = tflite_metadata.add_metadata(
        flatbuffer, spec, contract.artifact_metadata(spec, options.source_run), options.source_run
    )
    atomic_write_bytes(Path(out_path), with_metadata)
    seconds = time.perf_counter() - start
    details = io_details(Path(out_path))
    if quantize == "int8":
        details["calibration_images"] = int(len(calibration))
        if options.float_layers:
            details["float_layers"] = list(options.float_layers)
    return Artifact(Path(out_path), "tflite", quantize, path_size(out_path), seconds, details)


def io_details(path: Path) -> dict:
    """Input/output dtypes and quantization of a .tflite file (for the report and tests)."""
    interpreter = _interpreter(path, 1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {
        "input_dtype": np.dtype(inp["dtype"]).name,
        "input_quantization": [float(inp["quantization"][0]), int(inp["quantization"][1])],
        "output_dtype": np.dtype(out["dtype"]).name,
        "output_quantization": [float(out["quantization"][0]), int(out["quantization"][1])],
    }


def _interpreter(path: Path, threads: int | None):
    from ai_edge_litert.interpreter import Interpreter

    try:
        return Interpreter(model_path=str(path), num_threads=threads or None)
    except (ValueError, RuntimeError) as exc:
        raise EdgeError(f"LiteRT cannot load {path}: {_first_line(exc)}.") from exc


class TFLitePredictor:
    """Runs a ``.tflite`` file with LiteRT (XNNPACK); quantizes inputs/dequantizes outputs as needed."""

    def __init__(self, path: Path, threads: int | None = None):
        from edge.export import tflite_metadata

        self.path = Path(path)
        self.spec = contract.spec_from_metadata(tflite_metadata.read_metadata(self.path), str(self.path))
        self.threads = threads
        self._interpreter = _interpreter(self.path, threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        self.runtime = f"LiteRT {_litert_version()} (XNNPACK, {threads or 'default'} threads)"

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self.spec.input_shape])
            self._interpreter.allocate_tensors()
            self._batch = batch

    def _feed(self, images: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype == np.float32:
            return images.astype(np.float32)
        scale, zero = self._input["quantization"]
        info = np.iinfo(dtype)
        values = images.astype(np.float32) / (scale or 1.0) + zero
        return np.clip(np.round(values), info.min, info.max).astype(dtype)

    def _read(self, raw: np.ndarray) -> np.ndarray:
        if np.dtype(self._output["dtype"]) == np.float32:
            return raw.astype(np.float32)
        scale, zero = self._output["quantization"]
        return ((raw.astype(np.float32) - zero) * scale).astype(np.float32)

    def bench_call(self, images: np.ndarray):
        """The engine-only call for latency measurement: the input is set once, each call is
        ``invoke()`` + reading the output (what a bare interpreter loop does)."""
        self._resize(len(images))
        self._interpreter.set_tensor(self._input["index"], np.ascontiguousarray(self._feed(images)))
        invoke, get_tensor, index_out = self._interpreter.invoke, self._interpreter.get_tensor, self._output["index"]

        def run():
            invoke()
            return get_tensor(index_out)

        return run

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        out = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            self._resize(len(chunk))
            self._interpreter.set_tensor(self._input["index"], self._feed(chunk))
            self._interpreter.invoke()
            out.append(self._read(self._interpreter.get_tensor(self._output["index"])))
        return np.concatenate(out)


def load(path: Path, threads: int | None = None) -> TFLitePredictor:
    return TFLitePredictor(Path(path), threads)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if "error" in line.lower()] or text.splitlines() or [type(exc).__name__]
    return lines[0].strip()[:200]


FORMAT = Format(
    name="tflite",
    suffix=".tflite",
    quantize_kinds=QUANTIZE_KINDS,
    default_quantize=("fp32", "fp16", "int8"),
    export=export,
    load=load,
    budgets={"fp32": FP32_BUDGET, "fp16": FP16_BUDGET, "dynamic": COMPRESSED_BUDGET, "int8": COMPRESSED_BUDGET},
    verified_by=f"LiteRT {_litert_version()}",
)
