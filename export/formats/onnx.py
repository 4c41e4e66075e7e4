"""The ONNX format: fp32 (tf2onnx), fp16 and static int8 (onnxruntime QDQ), run with onnxruntime.

Every ONNX file takes uint8 RGB pixels (N, H, W, 3) as they are (a Cast to float sits at the top
of the graph, in front of the baked-in normalization) and outputs float32 probabilities.

- fp32: tf2onnx traces the serving ``tf.function`` (``opset`` option).
- fp16: weights and activations in float16 (onnxruntime's converter), float32 output kept.
- int8: onnxruntime static quantization in QDQ form, uint8 activations and int8 weights (U8S8,
  per-channel by default; 7-bit weights only on layers whose input can be negative, so x86 CPUs
  without VNNI do not saturate, see ``to_int8``), calibrated with the same representative images
  as TFLite; the final Softmax stays float.
  (U8U8 and ``quantize_dynamic`` made conv nets slower than fp32 on x86; static QDQ did not.)

edge's key/values (``edge.contract.artifact_metadata``) are the model's ``metadata_props``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edge import contract
from edge.errors import EdgeError, one_line
from edge.fileio import atomic_write_bytes, path_size
from edge.formats import COMPRESSED_BUDGET, FP16_BUDGET, FP32_BUDGET, Artifact, ExportOptions, Format
from edge.runtimes import ort as runtime
from edge.spec import ModelSpec, Normalization

QUANTIZE_KINDS = ("fp32", "fp16", "int8")


def to_onnx(model, opset: int = 17):
    """fp32 ONNX ``ModelProto`` of ``model`` with a uint8 ``image`` input."""
    import tf2onnx

    from edge.runtimes.tensorflow import serving_function

    serve = serving_function(model, "uint8")
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=int(opset))
    except Exception as exc:  # unsupported ops name themselves in tf2onnx's message
        raise EdgeError(f"ONNX conversion (tf2onnx, opset {opset}) failed: {one_line(exc)}.") from exc
    return proto


def to_fp16(proto):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(proto, keep_io_types=True)


def to_int8(proto, calibration: np.ndarray, per_channel: bool = True):
    """Static QDQ quantization (uint8 activations, int8 weights) calibrated on ``calibration``.

    x86 CPUs without VNNI multiply uint8 activations by int8 weights in pairs summed into int16
    (``vpmaddubsw``), which saturates when both products are large. That happens where a layer's
    input can be negative: its uint8 zero point sits near 128, so *every* raw value is about 128
    and two same-sign weights near 127 overflow. Those layers get 7-bit weights (``reduce_range``);
    layers fed by ReLU-like outputs (zero point 0, mostly small raw values) keep full 8-bit weights,
    whose precision they need. Measured on a flowers MobileNetV2 (200 held-out images): agreement
    with Keras 90.5% with 7-bit everywhere, 87% with 8-bit everywhere, 98.5% this way.
    The final Softmax stays float so probabilities are not rounded to 1/255 steps.
    """
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
        except Exception:  # noqa: BLE001  (pre-processing only improves the result; quantize the raw graph)
            prepped = src
        graph = onnx.load(prepped).graph
        quantize_static(
            prepped,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=True,  # the default for weights; full 8-bit where the input is non-negative
            nodes_to_exclude=[n.name for n in graph.node if n.op_type == "Softmax"],
            extra_options={"TensorQuantOverrides": full_range_weights(graph, per_channel)},
        )
        return onnx.load(dst)


# Ops whose output is >= 0 whatever their input; ops whose output is >= 0 when their first input
# is; and ops whose output is >= 0 when all their inputs are.
_NON_NEGATIVE_OPS = {"Relu", "Sigmoid", "HardSigmoid", "Softmax", "Abs"}
_FIRST_INPUT_OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Squeeze", "Unsqueeze",
                    "Reshape", "Flatten", "Transpose", "Resize", "Identity", "ReduceMean", "ReduceMax"}
_ALL_INPUTS_OPS = {"Concat", "Add", "Mul", "Max", "Min"}
_WEIGHT_AXIS = {"Conv": 0, "MatMul": 1}


def full_range_weights(graph, per_channel: bool) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` giving full 8-bit range to the weights of Conv/MatMul/Gemm nodes
    whose input is provably non-negative (after ReLU, ReLU6, sigmoid, ...), see ``to_int8``."""
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {out: node for node in graph.node for out in node.output}
    memo: dict[str, bool] = {}

    def non_negative(name: str, depth: int = 0) -> bool:
        if name in constants:
            return bool(np.all(constants[name] >= 0))
        if name in memo:
            return memo[name]
        node = producer.get(name)
        result = False
        if node is None or depth > 200:
            result = False
        elif node.op_type in _NON_NEGATIVE_OPS:
            result = True
        elif node.op_type == "Clip":
            low = node.input[1] if len(node.input) > 1 and node.input[1] else None
            low_attr = next((a.f for a in node.attribute if a.name == "min"), None)
            result = (low is not None and low in constants and float(np.min(constants[low])) >= 0) or (
                low_attr is not None and low_attr >= 0) or non_negative(node.input[0], depth + 1)
        elif node.op_type in _FIRST_INPUT_OPS:
            result = non_negative(node.input[0], depth + 1)
        elif node.op_type == "Pad":  # data, pads, optional constant value (default 0)
            value = node.input[2] if len(node.input) > 2 and node.input[2] else None
            result = non_negative(node.input[0], depth + 1) and (value is None or non_negative(value, depth + 1))
        elif node.op_type in _ALL_INPUTS_OPS:
            result = all(non_negative(i, depth + 1) for i in node.input if i)
        memo[name] = result
        return result

    overrides: dict[str, list[dict]] = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm") or len(node.input) < 2 or node.input[1] not in constants:
            continue
        if not non_negative(node.input[0]):
            continue
        entry: dict = {"reduce_range": False}
        if per_channel:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            entry["axis"] = _WEIGHT_AXIS.get(node.op_type, 0 if trans_b else 1)
        overrides[node.input[1]] = [entry]
    return overrides


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
        raise EdgeError(f"{path} is not a readable ONNX file: {one_line(exc)}.") from exc
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
        raise EdgeError(f"ONNX {quantize} conversion failed: {one_line(exc)}.") from exc
    proto.producer_name = "edge"
    proto.doc_string = f"{spec.name}: {spec.backbone} image classifier ({quantize}); input uint8 RGB pixels."
    set_metadata(proto, contract.artifact_metadata(spec, options.source_run))
    atomic_write_bytes(Path(out_path), proto.SerializeToString())
    details = {"opset": int(options.opset), "input_dtype": "uint8", "output_dtype": "float32"}
    if quantize == "int8":
        details.update(calibration_images=int(len(calibration)), per_channel=bool(options.per_channel),
                       quant_format="QDQ U8S8 (7-bit weights where the input can be negative)")
    return Artifact(Path(out_path), NAME, quantize, path_size(out_path), time.perf_counter() - start, details)


def load(path: Path, threads: int | None = None) -> runtime.OrtPredictor:
    """A Predictor for an edge ``.onnx`` file (its spec from ``metadata_props``)."""
    path = Path(path)
    return runtime.OrtPredictor(path, contract.spec_from_metadata(read_metadata(path), str(path)), threads)


def load_foreign(path: Path, threads: int | None, labels: list[str], normalization: Normalization | None):
    """A Predictor for an ``.onnx`` file without edge metadata, described by the user."""
    return runtime.OrtPredictor(Path(path), None, threads, normalization, labels)


def inspect(path: Path, predictor=None) -> dict:
    """Performance traps read from the graph: dynamic quantization, U8U8 weights."""
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (the loader reports unreadable files)
        return {"kind": "", "warnings": []}
    name = Path(path).name
    ops = {node.op_type for node in proto.graph.node}
    found = []
    if ops & {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}:
        found.append(f"{name}: dynamically quantized ONNX (ConvInteger/MatMulInteger) is usually slower than fp32 "
                     "for conv nets on x86; use static QDQ int8 (edge export's default).")
    initializers = {init.name: init.data_type for init in proto.graph.initializer}
    weight_types = set()
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input and node.input[0] in initializers:
            weight_types.add(initializers[node.input[0]])
    if onnx.TensorProto.UINT8 in weight_types and onnx.TensorProto.INT8 not in weight_types:
        found.append(f"{name}: U8U8 ONNX int8 (uint8 weights) ran slower than fp32 on x86; "
                     "quantize weights to int8 (U8S8, per channel).")
    return {"kind": "", "warnings": found}


NAME = "onnx"
FORMAT = Format(
    name=NAME,
    display_name="ONNX",
    suffix=".onnx",
    quantize_kinds=QUANTIZE_KINDS,
    default_quantize=("fp32", "int8"),
    export=export,
    load=load,
    read_metadata=read_metadata,
    budgets={"fp32": FP32_BUDGET, "fp16": FP16_BUDGET, "int8": COMPRESSED_BUDGET},
    verified_by=runtime.VERIFIED_BY,
    runtime="ort",
    load_foreign=load_foreign,
    remedies=("more-calibration", "per-channel"),
    inspect=inspect,
    options=("source_run", "opset", "per_channel", "calibration_count"),
)
