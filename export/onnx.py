"""The ONNX format: fp32 (tf2onnx), fp16 and static int8 (onnxruntime QDQ), run with onnxruntime.

Every ONNX file takes uint8 RGB pixels (N, H, W, 3) as they are (a Cast to float sits at the top
of the graph, in front of the baked-in normalization) and outputs float32 probabilities.

- fp32: tf2onnx traces the serving ``tf.function`` (``opset`` option).
- fp16: weights and activations in float16 (onnxruntime's converter), float32 output kept.
- int8: onnxruntime static quantization in QDQ form, uint8 activations and int8 weights (U8S8,
  per-channel by default, 7-bit weight range so x86 CPUs without VNNI do not saturate),
  calibrated with the same representative images as TFLite.
  (U8U8 and ``quantize_dynamic`` made conv nets slower than fp32 on x86; static QDQ did not.)

edge's key/values (``edge.contract.artifact_metadata``) are the model's ``metadata_props``.
"""

from __future__ import annotations

import os
import tempfile
import time
from importlib import metadata as pkg_metadata
from pathlib import Path

import numpy as np

from edge import contract
from edge.errors import EdgeError
from edge.export.base import COMPRESSED_BUDGET, FP16_BUDGET, FP32_BUDGET, Artifact, ExportOptions, Format, path_size
from edge.fileio import atomic_write_bytes
from edge.spec import ModelSpec

QUANTIZE_KINDS = ("fp32", "fp16", "int8")
BATCH = 32


def _ort_version() -> str:
    try:
        return pkg_metadata.version("onnxruntime")
    except pkg_metadata.PackageNotFoundError:
        return "?"


def to_onnx(model, opset: int = 17):
    """fp32 ONNX ``ModelProto`` of ``model`` with a uint8 ``image`` input."""
    import tf2onnx

    from edge.export.keras_model import serving_function

    serve = serving_function(model, "uint8")
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=int(opset))
    except Exception as exc:  # unsupported ops name themselves in tf2onnx's message
        raise EdgeError(f"ONNX conversion (tf2onnx, opset {opset}) failed: {_first_line(exc)}.") from exc
    return proto


def to_fp16(proto):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(proto, keep_io_types=True)


def to_int8(proto, calibration: np.ndarray, per_channel: bool = True):
    """Static QDQ quantization (uint8 activations, int8 weights) calibrated on ``calibration``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None or len(calibration) == 0:
        raise EdgeError("int8 ONNX export needs calibration images (the run's training split or --data).")
    input_name = proto.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(np.asarray(calibration, np.uint8))

        def get_next(self):
            item = next(self._items, None)
            return None if item is None else {input_name: item[None]}

    with tempfile.TemporaryDirectory(prefix="edge-onnx-") as tmp:
        src, prepped, dst = (os.path.join(tmp, name) for name in ("fp32.onnx", "prep.onnx", "int8.onnx"))
        onnx.save(proto, src)
        try:
            quant_pre_process(src, prepped, skip_symbolic_shape=True)
        except Exception:  # pre-processing only improves the result; quantize the raw graph
            prepped = src
        quantize_static(
            prepped,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            # 7-bit weights: with full 8-bit U8S8, x86 CPUs without VNNI saturate in the int8 conv
            # kernels (measured here: top-1 agreement 67% -> 86% on a small MobileNetV2).
            reduce_range=True,
        )
        return onnx.load(dst)


def set_metadata(proto, metadata: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: Path) -> dict[str, str]:
    """edge's key/values from an ONNX file's ``metadata_props`` (without loading the weights)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EdgeError(f"{path} is not a readable ONNX file: {_first_line(exc)}.") from exc
    return {p.key: p.value for p in proto.metadata_props}


def export(model, spec: ModelSpec, quantize: str, out_path: Path, calibration: np.ndarray | None = None,
           options: ExportOptions | None = None) -> Artifact:
    """Convert ``model`` to ONNX at ``out_path`` with edge's metadata."""
    options = options or ExportOptions()
    if quantize not in QUANTIZE_KINDS:
        raise EdgeError(f"ONNX has no '{quantize}' quantization; choose from {', '.join(QUANTIZE_KINDS)}.")
    start = time.perf_counter()
    proto = to_onnx(model, options.opset)
    try:
        if quantize == "fp16":
            proto = to_fp16(proto)
        elif quantize == "int8":
            proto = to_int8(proto, calibration, options.per_channel)
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"ONNX {quantize} conversion failed: {_first_line(exc)}.") from exc
    proto.producer_name = "edge"
    proto.doc_string = f"{spec.name}: {spec.backbone} image classifier ({quantize}); input uint8 RGB pixels."
    set_metadata(proto, contract.artifact_metadata(spec, options.source_run))
    atomic_write_bytes(Path(out_path), proto.SerializeToString())
    details = {"opset": int(options.opset), "input_dtype": "uint8", "output_dtype": "float32"}
    if quantize == "int8":
        details.update(calibration_images=int(len(calibration)), per_channel=bool(options.per_channel),
                       quant_format="QDQ U8S8 (reduce_range)")
    return Artifact(Path(out_path), "onnx", quantize, path_size(out_path), time.perf_counter() - start, details)


class ONNXPredictor:
    """Runs an ``.onnx`` file with onnxruntime's CPU provider."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.spec = contract.spec_from_metadata(read_metadata(self.path), str(self.path))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise EdgeError(f"onnxruntime cannot load {path}: {_first_line(exc)}.") from exc
        self._input = self._session.get_inputs()[0]
        self._dtype = np.uint8 if "uint8" in self._input.type else np.float32
        self.runtime = f"onnxruntime {_ort_version()} (CPU, {threads or 'default'} threads)"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        out = [
            self._session.run(None, {self._input.name: images[s : s + BATCH].astype(self._dtype)})[0]
            for s in range(0, len(images), BATCH)
        ]
        return np.concatenate(out).astype(np.float32)


def load(path: Path, threads: int | None = None) -> ONNXPredictor:
    return ONNXPredictor(Path(path), threads)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


FORMAT = Format(
    name="onnx",
    suffix=".onnx",
    quantize_kinds=QUANTIZE_KINDS,
    default_quantize=("fp32", "int8"),
    export=export,
    load=load,
    budgets={"fp32": FP32_BUDGET, "fp16": FP16_BUDGET, "int8": COMPRESSED_BUDGET},
    verified_by=f"onnxruntime {_ort_version()}",
)
