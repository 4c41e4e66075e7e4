"""The TFLite format: fp32, fp16, dynamic-range and full-int8 ``.tflite`` files, run with LiteRT.

All kinds are converted from one serving ``tf.function`` (raw RGB pixels 0..255 -> probabilities).
fp32/fp16/dynamic files take float32 pixels 0..255 (TFLite's float models only take float
input). Full int8 files take uint8 pixels as they are (default) or int8 ``pixel - 128``
(``int8_io="int8"``): the representative set always contains one image spanning 0..255, so the
input quantization is exactly scale 1 with zero point 0 / -128 and the stored value is the pixel.
Their output is the quantized probability (dequantized by the predictor).

Standard TFLite metadata (labels file, normalization) and edge's key/values are added by
``edge.export.formats.tflite_metadata``. ``load`` runs a file with LiteRT's interpreter (XNNPACK).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge import contract
from edge.errors import EdgeError, one_line
from edge.fileio import atomic_write_bytes, path_size
from edge.formats import COMPRESSED_BUDGET, FP16_BUDGET, FP32_BUDGET, Artifact, ExportOptions, Format
from edge.runtimes import IDENTITY
from edge.runtimes import litert as runtime
from edge.spec import ModelSpec, Normalization

QUANTIZE_KINDS = ("fp32", "fp16", "dynamic", "int8")
INT8_IO_TYPES = ("uint8", "int8")


def range_anchor(size: tuple[int, int]) -> np.ndarray:
    """One image whose pixels span exactly 0..255, so the int8 input scale is 1 (raw pixels)."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = 255
    return img


def _converter(model, quantize: str, calibration: np.ndarray | None, options: ExportOptions):
    from edge.keras_setup import tf
    from edge.runtimes.tensorflow import serving_function, variables_holder

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
    from edge.logs import native_stderr_quiet

    try:
        with native_stderr_quiet():  # the converter's native "fully_quantize: ..." line
            if quantize == "int8" and options.float_layers:
                return _convert_mixed(converter, representative, options.float_layers)
            return converter.convert()
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"TFLite conversion ({quantize}) failed: {one_line(exc)}.") from exc


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
    from edge.export.formats import tflite_metadata

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
    return Artifact(Path(out_path), NAME, quantize, path_size(out_path), seconds, details)


io_details = runtime.io_details


def read_metadata(path: Path) -> dict[str, str]:
    """edge's key/values of a ``.tflite`` file ({} when it has none)."""
    from edge.export.formats import tflite_metadata

    return tflite_metadata.read_metadata(path, missing_ok=True)


def load(path: Path, threads: int | None = None) -> runtime.LiteRTPredictor:
    """A Predictor for an edge ``.tflite`` file (its spec from the file's metadata)."""
    path = Path(path)
    return runtime.LiteRTPredictor(path, contract.spec_from_metadata(read_metadata(path), str(path)), threads)


def load_foreign(path: Path, threads: int | None, labels: list[str], normalization: Normalization | None):
    """A Predictor for a ``.tflite`` file without edge metadata, described by the user."""
    return runtime.LiteRTPredictor(Path(path), None, threads, normalization, labels)


def inspect(path: Path, predictor=None) -> dict:
    """The kind (fp32/fp16/dynamic/int8) read from the tensors, and the performance traps it implies."""
    if not isinstance(predictor, runtime.LiteRTPredictor):
        predictor = runtime.LiteRTPredictor(Path(path), None, 1, IDENTITY, ["?"])
    kind, name, found = predictor.kind(), Path(path).name, []
    if kind == "dynamic":
        found.append(f"{name}: dynamic-range TFLite runs float activations with int8 weights and was 3-6x "
                     "slower than fp32 on x86 with XNNPACK; ship fp32, fp16 or full int8 instead.")
    if kind == "int8" and predictor.input_dtype == np.uint8:
        found.append(f"{name}: uint8 input/output costs about 10% over int8 I/O in LiteRT. Keep uint8 for "
                     "MediaPipe Tasks and other consumers that feed raw pixels (they refuse int8 input); "
                     "--int8-io int8 only pays when the app feeds pixel - 128 itself.")
    if "XNNPACK" not in predictor.runtime:
        found.append(f"{name}: LiteRT without its default delegates (no XNNPACK) is 5-10x slower.")
    return {"kind": kind, "warnings": found}


NAME = "tflite"
FORMAT = Format(
    name=NAME,
    display_name="TFLite",
    suffix=".tflite",
    quantize_kinds=QUANTIZE_KINDS,
    default_quantize=("fp32", "fp16", "int8"),
    export=export,
    load=load,
    read_metadata=read_metadata,
    budgets={"fp32": FP32_BUDGET, "fp16": FP16_BUDGET, "dynamic": COMPRESSED_BUDGET, "int8": COMPRESSED_BUDGET},
    verified_by=runtime.VERIFIED_BY,
    runtime="litert",
    load_foreign=load_foreign,
    remedies=("more-calibration", "float-fallback", "qat"),
    inspect=inspect,
    bench_note="LiteRT runs with its default delegates (XNNPACK); its resolver without them is 5-10x slower.",
    options=("source_run", "int8_io", "calibration_count", "float_layers"),
    runs_in_mediapipe=True,
)
