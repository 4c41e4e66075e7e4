"""Metadata inside edge's .tflite files: the standard TFLite model metadata plus edge's own keys.

Written without tflite-support (it would downgrade protobuf and break TensorFlow); the model is
rewritten with LiteRT's generated TFLite schema bindings and the metadata flatbuffer is built by
``edge.export.formats.tflite_metadata_schema``. A file gets:

1. **Standard metadata**, as tflite-support's MetadataPopulator writes it, so MediaPipe Tasks'
   ImageClassifier, the TFLite Task Library and other metadata readers take the file as-is: a
   ``TFLITE_METADATA`` entry in the model's ``metadata`` list pointing at a buffer holding the
   ModelMetadata flatbuffer (name, description, version, author, min_parser_version); input tensor
   metadata with ImageProperties (RGB, default size), a NormalizationOptions process unit and
   Stats; output tensor metadata with ``labels.txt`` (one label per line, in ``spec.labels``
   order) as a TENSOR_AXIS_LABELS associated file. The associated files are packed the standard
   way: an uncompressed zip appended after the flatbuffer (offsets counted from the file start).

   *Normalization.* NormalizationOptions describe what a consumer must do to pixels *before*
   feeding the model. edge bakes the spec's (x - mean) / std into the graph, so the declared
   options are the identity, mean 0 and std 1: MediaPipe then feeds raw 0..255 values to a float
   input (its float range is ((0 - mean) / std, (255 - mean) / std) = (0, 255)). For uint8 and
   int8 inputs MediaPipe ignores NormalizationOptions and writes the pixel bytes as they are
   (uint8: 0..255; int8: pixel - 128), which is right only when the input tensor's quantization is
   scale 1 with zero point 0 (uint8) or -128 (int8), i.e. the quantized value *is* the raw pixel.
   ``add_metadata`` checks exactly that and refuses a model whose calibration did not produce it.
   (MediaPipe's ImageClassifier accepts float32 and uint8 inputs only; an int8-input model carries
   the same standard metadata for other readers, but MediaPipe refuses it by its input type.)
   The schema says quantized models share their float model's normalization options, so the
   identity is declared there too. The spec's real mean/std stay readable in edge's keys and are
   quoted in the input tensor's description.

2. **edge's key/values** (``edge.contract.artifact_metadata``), each as its own entry in the
   model's ``metadata`` list (name = the key, e.g. ``edge.spec``; buffer = the UTF-8 value), beside
   the converter's own entries (``min_runtime_version``, ``CONVERSION_METADATA``). That is the
   TFLite schema's place for named key/value data, it needs no zip or metadata parser to read, and
   it mirrors ONNX ``metadata_props`` and Core ML user-defined metadata key for key.

Rewriting keeps every other part of the model (weight buffers are written 16-byte aligned, as the
schema asks) and replaces metadata added earlier, so ``add_metadata`` can be applied again to its
own output. Checked against mediapipe 1.2.2: its generated schema parses the metadata, and its
ImageClassifier returns the labels with the same scores LiteRT gives for the raw pixels.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from edge import contract
from edge.contract import KEY_EDGE_VERSION, KEY_SOURCE_RUN
from edge.errors import EdgeError
from edge.export.formats import tflite_metadata_schema as schema
from edge.spec import ModelSpec

STANDARD_METADATA_NAME = "TFLITE_METADATA"  # the entry metadata readers look for
LABELS_FILE = "labels.txt"
EDGE_KEY_PREFIX = "edge."
TFLITE_FILE_IDENTIFIER = b"TFL3"
INPUT_TENSOR_NAME = contract.INPUT_NAME
OUTPUT_TENSOR_NAME = contract.OUTPUT_NAME

_BUFFER_ALIGNMENT = 16  # the TFLite schema asks for it (Buffer.data: force_align 16)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same model and spec give the same bytes


class _PixelInput(NamedTuple):
    """An input type edge exports, and the quantization under which its stored value is the raw
    pixel (see the module docstring)."""

    name: str
    zero_point: int | None  # None: float input, no quantization
    stats: tuple[float, float]  # range of the stored values
    feed: str  # what to feed, for the tensor description


_INPUTS = {
    tfl.TensorType.FLOAT32: _PixelInput(
        "float32", None, (0.0, 255.0), "raw pixel values 0..255 (float32)"
    ),
    tfl.TensorType.UINT8: _PixelInput(
        "uint8", 0, (0.0, 255.0), "raw pixel values 0..255 (uint8)"
    ),
    tfl.TensorType.INT8: _PixelInput(
        "int8", -128, (-128.0, 127.0), "pixel values minus 128 (int8, scale 1, zero point -128)"
    ),
}
_OUTPUT_BOUNDS = {  # output type -> range of its stored values (None: float probabilities)
    tfl.TensorType.FLOAT32: None,
    tfl.TensorType.UINT8: (0, 255),
    tfl.TensorType.INT8: (-128, 127),
}


# ----------------------------------------------------------------------------------- writing


def add_metadata(
    model_bytes: bytes, spec: ModelSpec, metadata: dict[str, str], source_run: str = ""
) -> bytes:
    """Return ``model_bytes`` with standard TFLite metadata and edge's key/values.

    ``metadata`` is ``edge.contract.artifact_metadata(spec, ...)``; a non-empty ``source_run``
    replaces its ``edge.source_run``. Raises EdgeError when the model does not match the spec
    (input size, number of labels) or does not take raw pixels.
    """
    for key, value in metadata.items():
        if not key.startswith(EDGE_KEY_PREFIX) or not isinstance(value, str):
            raise ValueError(f"edge metadata must map 'edge.*' keys to strings, got {key!r}")
    for label in spec.labels:
        if not label or "\n" in label or "\r" in label:
            raise EdgeError(
                f"The label {label!r} cannot be written to {LABELS_FILE} (empty or multi-line)."
            )
    if source_run:
        metadata = {**metadata, KEY_SOURCE_RUN: source_run}

    model = _unpack(model_bytes)
    io_types = _check_io(model, spec)
    standard = schema.build(_model_info(spec, metadata, io_types))
    entries = {STANDARD_METADATA_NAME: standard}
    entries.update((key, value.encode("utf-8")) for key, value in metadata.items())
    _replace_metadata_entries(model, entries)
    labels_text = "".join(f"{label}\n" for label in spec.labels)
    return _append_zip(_pack(model), {LABELS_FILE: labels_text.encode("utf-8")})


@dataclass(frozen=True)
class _IoTypes:
    input_type: int
    output_type: int
    output_quantization: tuple[float, int] | None


def _check_io(model: tfl.ModelT, spec: ModelSpec) -> _IoTypes:
    """The model must be edge's classifier for ``spec``: raw-pixel image in, probabilities out."""
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise EdgeError(
            f"The TFLite model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
            "an edge classifier has one image input and one probability output."
        )
    image = graph.tensors[graph.inputs[0]]
    probs = graph.tensors[graph.outputs[0]]
    h, w = spec.input_size
    shape = [int(v) for v in image.shape]
    if len(shape) != 4 or shape[1:] != [h, w, 3]:
        raise EdgeError(
            f"The TFLite model's input shape {shape} does not match the spec's {h}x{w} RGB input."
        )
    if image.type not in _INPUTS:
        raise EdgeError(
            f"The TFLite model's input type {_type_name(image.type)} is not float32, uint8 or int8."
        )
    expected = _INPUTS[image.type]
    if expected.zero_point is not None:
        scale, zp = _quantization(image)
        if abs(scale - 1.0) > 1e-3 or zp != expected.zero_point:
            raise EdgeError(
                f"The {expected.name} input is quantized with scale {scale:g} and zero point {zp}, "
                f"so it does not take raw 0..255 pixels (needs scale 1, zero point "
                f"{expected.zero_point}); calibrate with images whose pixels span 0 to 255."
            )
    if int(probs.shape[-1]) != spec.num_classes:
        raise EdgeError(
            f"The TFLite model outputs {int(probs.shape[-1])} scores but the spec has "
            f"{spec.num_classes} labels."
        )
    if probs.type not in _OUTPUT_BOUNDS:
        raise EdgeError(
            f"The TFLite model's output type {_type_name(probs.type)} is not float32, uint8 "
            "or int8."
        )
    out_quant = _quantization(probs) if _OUTPUT_BOUNDS[probs.type] else None
    return _IoTypes(image.type, probs.type, out_quant)


def _model_info(spec: ModelSpec, metadata: dict[str, str], io_types: _IoTypes) -> schema.ModelInfo:
    h, w = spec.input_size
    norm = spec.normalization
    pixels = _INPUTS[io_types.input_type]
    edge_version = metadata.get(KEY_EDGE_VERSION, "")
    shown = ", ".join(spec.labels[:5]) + (", ..." if spec.num_classes > 5 else "")
    image = schema.TensorInfo(
        name=INPUT_TENSOR_NAME,
        description=(
            f"{w}x{h} RGB image as {pixels.feed}. Resize the whole image "
            f"to {w}x{h} ({spec.resize}). The model normalizes inside its graph "
            f"((x - mean) / std with mean {list(norm.mean)} and std {list(norm.std)}, "
            f"{norm.channel_order}), so the normalization options here are the identity."
        ),
        image_size=(w, h),
        normalization=([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
        stats=([pixels.stats[0]], [pixels.stats[1]]),
    )
    probs = schema.TensorInfo(
        name=OUTPUT_TENSOR_NAME,
        description=(
            f"Probability of each of the {spec.num_classes} classes, in {LABELS_FILE} order."
        ),
        stats=_probability_range(io_types),
        files=[
            schema.FileInfo(
                name=LABELS_FILE,
                description="Class labels, one per line, in output order.",
                type=schema.TENSOR_AXIS_LABELS,
            )
        ],
    )
    return schema.ModelInfo(
        name=spec.name,
        description=(
            f"Image classifier ({spec.backbone}) over {spec.num_classes} classes ({shown}), "
            f"exported by edge{' ' + edge_version if edge_version else ''}. Input: {w}x{h} RGB "
            "pixels 0..255; output: class probabilities. The full edge spec is the 'edge.spec' "
            "entry of the model's metadata list."
        ),
        version=spec.model_version,
        author=f"edge {edge_version}".strip(),
        inputs=[image],
        outputs=[probs],
    )


def _probability_range(io_types: _IoTypes) -> tuple[list[float], list[float]]:
    """Stats of the output tensor's stored values: probabilities 0..1, quantized if it is."""
    bounds = _OUTPUT_BOUNDS[io_types.output_type]
    if bounds is None or io_types.output_quantization is None:
        return [0.0], [1.0]
    scale, zp = io_types.output_quantization
    low, high = (float(np.clip(round(p / scale) + zp, *bounds)) for p in (0.0, 1.0))
    return [low], [high]


def _replace_metadata_entries(model: tfl.ModelT, entries: dict[str, bytes]) -> None:
    """Point each named metadata entry at a buffer holding its bytes (reusing the buffer of an
    entry of the same name); entries edge wrote before and no longer writes are dropped."""
    entries = dict(entries)
    model.metadata = list(model.metadata or [])
    model.buffers = list(model.buffers or [])
    kept = []
    for entry in model.metadata:
        name = _decode(entry.name)
        ours = name == STANDARD_METADATA_NAME or name.startswith(EDGE_KEY_PREFIX)
        if name in entries:
            data = np.frombuffer(entries.pop(name), dtype=np.uint8)
            model.buffers[entry.buffer] = tfl.BufferT(data=data)
        elif ours:
            model.buffers[entry.buffer] = tfl.BufferT()  # indices must not move: leave it empty
            continue
        kept.append(entry)
    model.metadata = kept
    for name, data in entries.items():
        model.buffers.append(tfl.BufferT(data=np.frombuffer(data, dtype=np.uint8)))
        model.metadata.append(tfl.MetadataT(name=name, buffer=len(model.buffers) - 1))


class _AlignedBufferT(tfl.BufferT):
    """A Buffer whose data starts 16-byte aligned, as the schema asks (the generated ``Pack``
    aligns to 1 byte only)."""

    def Pack(self, builder):  # noqa: N802 (generated-code naming)
        if self.data is None or len(self.data) == 0:
            return super().Pack(builder)
        payload = np.asarray(self.data, dtype=np.uint8).tobytes()
        builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
        builder.head -= len(payload)
        builder.Bytes[builder.head : builder.head + len(payload)] = payload
        data = builder.EndVector()
        tfl.BufferStart(builder)
        tfl.BufferAddData(builder, data)
        return tfl.BufferEnd(builder)


def _pack(model: tfl.ModelT) -> bytes:
    model.buffers = [_AlignedBufferT(data=b.data) for b in model.buffers]
    builder = flatbuffers.Builder(1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _append_zip(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """The flatbuffer followed by an uncompressed zip of ``files`` (offsets from the file start,
    as tflite-support writes it; MediaPipe reads stored entries in place)."""
    stream = io.BytesIO()
    stream.write(flatbuffer)
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_DATE), data)
    return stream.getvalue()


# ----------------------------------------------------------------------------------- reading


def read_metadata(path_or_bytes: str | Path | bytes, missing_ok: bool = False) -> dict[str, str]:
    """edge's key/values of a .tflite file (feed them to ``edge.contract.spec_from_metadata``);
    ``missing_ok``: {} for a valid file without edge metadata instead of an error."""
    data, where = _load(path_or_bytes)
    values = {
        name: raw.decode("utf-8")
        for name, raw in _metadata_entries(data, where).items()
        if name.startswith(EDGE_KEY_PREFIX)
    }
    if not values and not missing_ok:
        raise EdgeError(f"{where} carries no edge metadata (it was not exported by edge export).")
    return values


def read_standard_metadata(path_or_bytes: str | Path | bytes) -> dict:
    """The standard TFLite metadata of a .tflite file, with the labels read from its packed file.

    Keys: name, description, version, author, license, min_parser_version, labels, labels_file,
    normalization {mean, std}, image {color_space, width, height}, input and output (the main
    subgraph's tensor metadata, parsed in full), associated_files (the names packed in the
    model's zip) and subgraphs (everything, as parsed).
    """
    data, where = _load(path_or_bytes)
    buf = _metadata_entries(data, where).get(STANDARD_METADATA_NAME)
    if buf is None:
        raise EdgeError(f"{where} carries no standard TFLite metadata ({STANDARD_METADATA_NAME}).")
    if not schema.has_identifier(buf):
        raise EdgeError(f"The {STANDARD_METADATA_NAME} entry of {where} is not TFLite metadata.")
    try:
        parsed = schema.parse(buf)
    except Exception as exc:  # a truncated or corrupt flatbuffer fails anywhere in the parser
        reason = type(exc).__name__
        raise EdgeError(f"The TFLite metadata of {where} is corrupt ({reason}).") from exc
    packed = _packed_files(data)
    main = parsed["subgraphs"][0] if parsed["subgraphs"] else {"inputs": [], "outputs": []}
    image = main["inputs"][0] if main["inputs"] else {}
    output = main["outputs"][0] if main["outputs"] else {}
    label_files = [
        f["name"] for f in output.get("associated_files", []) if f["type"] == "TENSOR_AXIS_LABELS"
    ]
    labels_file = label_files[0] if label_files else None  # the schema: the first one is used
    labels = None
    if labels_file is not None:
        if labels_file not in packed:
            raise EdgeError(f"{where} names the label file {labels_file} but does not contain it.")
        labels = packed[labels_file].decode("utf-8", errors="replace").splitlines()
    size = image.get("default_size") or {}
    return {
        **{key: parsed[key] for key in _MODEL_FIELDS},
        "labels": labels,
        "labels_file": labels_file,
        "normalization": image.get("normalization"),
        "image": {
            "color_space": image.get("color_space"),
            "width": size.get("width"),
            "height": size.get("height"),
        },
        "input": image,
        "output": output,
        "associated_files": sorted(packed),
        "subgraphs": parsed["subgraphs"],
    }


_MODEL_FIELDS = ("name", "description", "version", "author", "license", "min_parser_version")


def _load(path_or_bytes: str | Path | bytes) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, where = bytes(path_or_bytes), "The TFLite model"
    else:
        path = Path(path_or_bytes)
        if not path.is_file():
            raise EdgeError(f"No TFLite model found at {path}.")
        data, where = path.read_bytes(), str(path)
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise EdgeError(f"{where} is not a TFLite model (no TFL3 flatbuffer identifier).")
    return data, where


def _metadata_entries(data: bytes, where: str) -> dict[str, bytes]:
    """name -> buffer bytes of every entry in the model's ``metadata`` list."""
    try:
        model = tfl.Model.GetRootAs(data, 0)
        entries = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            buffer = model.Buffers(entry.Buffer())
            raw = b"" if buffer.DataIsNone() else buffer.DataAsNumpy().tobytes()
            entries[_decode(entry.Name())] = raw
        return entries
    except Exception as exc:  # truncated or corrupt flatbuffer
        raise EdgeError(f"{where} is not a readable TFLite model ({type(exc).__name__}).") from exc


def _packed_files(data: bytes) -> dict[str, bytes]:
    """The files of the zip appended to the model, if any."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):  # no zip, or a damaged one
        return {}


# ----------------------------------------------------------------------------------- helpers


def _unpack(model_bytes: bytes) -> tfl.ModelT:
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise EdgeError("The converter output is not a TFLite model (no TFL3 identifier).")
    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs(data, 0))
    if any(b.offset for b in model.buffers or []):
        raise EdgeError("TFLite models over 2 GB (external buffer offsets) cannot carry metadata.")
    if not model.subgraphs:
        raise EdgeError("The TFLite model has no subgraph.")
    return model


def _quantization(tensor: tfl.TensorT) -> tuple[float, int]:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return 0.0, 0
    return float(q.scale[0]), int(q.zeroPoint[0])


def _type_name(tensor_type: int) -> str:
    names = {v: k for k, v in vars(tfl.TensorType).items() if not k.startswith("_")}
    return names.get(tensor_type, str(tensor_type)).lower()


def _decode(name: bytes | str | None) -> str:
    if name is None:
        return ""
    return name.decode("utf-8") if isinstance(name, bytes) else name
