"""Known performance traps, detected in the artifacts and in the measured numbers.

Each check returns warning sentences for the report. From measurements of MobileNetV2 on x86:
dynamic-range TFLite runs 3-6x slower than fp32 (float activations, int8 weights re-quantized on
the fly); uint8 model I/O costs about 10% over int8 I/O; ONNX U8U8 (uint8 weights) and dynamic
quantization are slower than fp32; LiteRT without its default delegates (no XNNPACK) is 5-10x
slower. And whatever the theory: an int8 artifact measured slower than its fp32 sibling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tflite_kind(interpreter) -> str:
    """fp32 | fp16 | dynamic | int8 from a LiteRT interpreter's tensors."""
    inp = interpreter.get_input_details()[0]
    if np.dtype(inp["dtype"]) in (np.uint8, np.int8):
        return "int8"
    dtypes = {np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    if np.dtype(np.int8) in dtypes:
        return "dynamic"
    if np.dtype(np.float16) in dtypes:
        return "fp16"
    return "fp32"


def artifact_warnings(ref, predictor) -> list[str]:
    """Warnings read from the artifact itself (no timing needed)."""
    found: list[str] = []
    interpreter = getattr(predictor, "_interpreter", None)
    if ref.format == "tflite" and interpreter is not None:
        kind = tflite_kind(interpreter)
        if kind == "dynamic":
            found.append(f"{ref.name}: dynamic-range TFLite runs float activations with int8 weights and was 3-6x "
                         "slower than fp32 on x86 with XNNPACK; ship fp32, fp16 or full int8 instead.")
        if kind == "int8" and np.dtype(interpreter.get_input_details()[0]["dtype"]) == np.uint8:
            found.append(f"{ref.name}: uint8 input/output costs about 10% over int8 I/O in LiteRT; "
                         "export with --int8-io int8 when the app can feed pixel - 128.")
    if ref.format == "onnx":
        found += _onnx_warnings(ref.path, ref.name)
    runtime = str(getattr(predictor, "runtime", ""))
    if ref.format == "tflite" and "XNNPACK" not in runtime:
        found.append(f"{ref.name}: LiteRT without its default delegates (no XNNPACK) is 5-10x slower.")
    return found


def _onnx_warnings(path: Path, name: str) -> list[str]:
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (the loader reports unreadable files)
        return []
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
    return found


def measured_warnings(rows) -> list[str]:
    """An int8 artifact slower than the fp32 one of the same format at the same thread count."""
    found = []
    fp32 = {(r.format, r.threads, r.batch): r for r in rows if r.quantize == "fp32" and r.p50_ms is not None}
    for row in rows:
        base = fp32.get((row.format, row.threads, row.batch))
        if row.quantize in ("int8", "dynamic") and base and row.p50_ms is not None and row.p50_ms > base.p50_ms:
            threads = f"{row.threads} thread{'' if row.threads == 1 else 's'}"
            found.append(f"{row.name} ({threads}) is slower than {base.name}: p50 {row.p50_ms:.2f} ms vs "
                         f"{base.p50_ms:.2f} ms on this CPU.")
    return found
