"""Writes and reads the standard TFLite model-metadata flatbuffer, without tflite-support.

The layout follows tflite-support's ``tensorflow_lite_support/metadata/metadata_schema.fbs``
(file identifier ``M001``). Only the tables an image classifier needs are handled:
ModelMetadata -> SubGraphMetadata -> TensorMetadata (Content with ImageProperties or
FeatureProperties, a NormalizationOptions process unit, Stats, AssociatedFile). Every field used
exists since schema 1.0.0, hence ``MIN_PARSER_VERSION``.

Slot numbers below are the field positions in the .fbs tables (a union takes two slots: its type
tag, then its value). A field this module does not write is simply absent from the buffer, which
the schema allows for every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from flatbuffers import number_types
from flatbuffers.table import Table

FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"

# enum ColorSpaceType
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
RGB = 1
# enum AssociatedFileType
FILE_TYPES = {
    0: "UNKNOWN",
    1: "DESCRIPTIONS",
    2: "TENSOR_AXIS_LABELS",
    3: "TENSOR_VALUE_LABELS",
    4: "TENSOR_AXIS_SCORE_CALIBRATION",
    5: "VOCABULARY",
    6: "SCANN_INDEX_FILE",
}
TENSOR_AXIS_LABELS = 2
# union ContentProperties
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2
_CONTENT_KINDS = {0: None, 1: "feature", 2: "image", 3: "bounding_box", 4: "audio"}
# union ProcessUnitOptions
_NORMALIZATION_OPTIONS = 1


@dataclass
class FileInfo:
    """An AssociatedFile: a file packed into the model's zip, referenced by name."""

    name: str
    description: str = ""
    type: int = 0  # AssociatedFileType


@dataclass
class TensorInfo:
    """A TensorMetadata entry; ``image_size`` (width, height) makes it an RGB image tensor."""

    name: str
    description: str = ""
    image_size: tuple[int, int] | None = None
    normalization: tuple[list[float], list[float]] | None = None  # (mean, std)
    stats: tuple[list[float], list[float]] | None = None  # (min, max)
    files: list[FileInfo] = field(default_factory=list)


@dataclass
class ModelInfo:
    """A ModelMetadata with one subgraph (TFLite models edge writes have exactly one)."""

    name: str
    description: str
    version: str
    author: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    min_parser_version: str = MIN_PARSER_VERSION


# ----------------------------------------------------------------------------------- writing


def build(info: ModelInfo) -> bytes:
    """Serialize ``info`` as a ModelMetadata flatbuffer (identifier M001)."""
    b = flatbuffers.Builder(1024)
    inputs = _offsets(b, [_tensor(b, t) for t in info.inputs])
    outputs = _offsets(b, [_tensor(b, t) for t in info.outputs])
    subgraph = _table(b, [(2, inputs), (3, outputs)])
    subgraphs = _offsets(b, [subgraph])
    root = _table(
        b,
        [
            (0, _string(b, info.name)),
            (1, _string(b, info.description)),
            (2, _string(b, info.version)),
            (3, subgraphs),
            (4, _string(b, info.author)),
            (7, _string(b, info.min_parser_version)),
        ],
    )
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def _tensor(b: flatbuffers.Builder, t: TensorInfo) -> int:
    if t.image_size is not None:
        width, height = t.image_size
        size = _table(b, [], scalars=[(0, "Uint32", width), (1, "Uint32", height)])
        properties = _table(b, [(1, size)], scalars=[(0, "Int8", RGB)])
        kind = _IMAGE_PROPERTIES
    else:
        properties = _table(b, [])
        kind = _FEATURE_PROPERTIES
    content = _table(b, [(1, properties)], scalars=[(0, "Uint8", kind)])
    process_units = None
    if t.normalization is not None:
        mean, std = t.normalization
        options = _table(b, [(0, _floats(b, mean)), (1, _floats(b, std))])
        unit = _table(b, [(1, options)], scalars=[(0, "Uint8", _NORMALIZATION_OPTIONS)])
        process_units = _offsets(b, [unit])
    stats = None
    if t.stats is not None:
        low, high = t.stats
        stats = _table(b, [(0, _floats(b, high)), (1, _floats(b, low))])
    files = None
    if t.files:
        files = _offsets(b, [_file(b, f) for f in t.files])
    return _table(
        b,
        [
            (0, _string(b, t.name)),
            (1, _string(b, t.description)),
            (3, content),
            (4, process_units),
            (5, stats),
            (6, files),
        ],
    )


def _file(b: flatbuffers.Builder, f: FileInfo) -> int:
    return _table(
        b,
        [(0, _string(b, f.name)), (1, _string(b, f.description))],
        scalars=[(2, "Int8", f.type)],
    )


def _table(b: flatbuffers.Builder, offsets: list, scalars: list = ()) -> int:
    """One table: ``offsets`` are (slot, offset-or-None) children built beforehand;
    ``scalars`` are (slot, flatbuffers type name, value)."""
    slots = [s for s, _ in offsets] + [s for s, _, _ in scalars]
    b.StartObject(max(slots, default=-1) + 1)
    for slot, offset in offsets:
        if offset is not None:
            b.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, kind, value in scalars:
        getattr(b, f"Prepend{kind}Slot")(slot, value, 0)
    return b.EndObject()


def _string(b: flatbuffers.Builder, text: str) -> int | None:
    return b.CreateString(text) if text else None


def _floats(b: flatbuffers.Builder, values: list[float]) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<f4"))


def _offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


# ----------------------------------------------------------------------------------- reading


def has_identifier(buf: bytes) -> bool:
    return len(buf) >= 8 and bytes(buf[4:8]) == FILE_IDENTIFIER


def parse(buf: bytes) -> dict:
    """The ModelMetadata in ``buf`` as plain Python values (absent fields are None)."""
    root = _Reader(buf, flatbuffers.encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))
    return {
        "name": root.string(0),
        "description": root.string(1),
        "version": root.string(2),
        "author": root.string(4),
        "license": root.string(5),
        "min_parser_version": root.string(7),
        "associated_files": [_parse_file(f) for f in root.tables(6)],
        "subgraphs": [
            {
                "name": sg.string(0),
                "inputs": [_parse_tensor(t) for t in sg.tables(2)],
                "outputs": [_parse_tensor(t) for t in sg.tables(3)],
                "associated_files": [_parse_file(f) for f in sg.tables(4)],
            }
            for sg in root.tables(3)
        ],
    }


def _parse_tensor(t: _Reader) -> dict:
    out: dict = {"name": t.string(0), "description": t.string(1), "content": None}
    content = t.table(3)
    if content is not None:
        kind = _CONTENT_KINDS.get(content.scalar(0, number_types.Uint8Flags), "unknown")
        out["content"] = kind
        properties = content.table(1)
        if kind == "image" and properties is not None:
            out["color_space"] = COLOR_SPACES.get(properties.scalar(0, number_types.Int8Flags))
            size = properties.table(1)
            if size is not None:
                out["default_size"] = {
                    "width": size.scalar(0, number_types.Uint32Flags),
                    "height": size.scalar(1, number_types.Uint32Flags),
                }
    out["normalization"] = None
    for unit in t.tables(4):
        if unit.scalar(0, number_types.Uint8Flags) == _NORMALIZATION_OPTIONS:
            options = unit.table(1)
            out["normalization"] = {"mean": options.floats(0), "std": options.floats(1)}
    stats = t.table(5)
    out["stats"] = None if stats is None else {"min": stats.floats(1), "max": stats.floats(0)}
    out["associated_files"] = [_parse_file(f) for f in t.tables(6)]
    return out


def _parse_file(f: _Reader) -> dict:
    kind = f.scalar(2, number_types.Int8Flags)
    return {
        "name": f.string(0),
        "description": f.string(1),
        "type": FILE_TYPES.get(kind, str(kind)),
    }


class _Reader:
    """Field access on one flatbuffer table by slot number."""

    def __init__(self, buf: bytes, pos: int):
        self._t = Table(buf, pos)

    def _field(self, slot: int) -> int:
        return self._t.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str | None:
        o = self._field(slot)
        return self._t.String(o + self._t.Pos).decode("utf-8") if o else None

    def scalar(self, slot: int, flags) -> int:
        o = self._field(slot)
        return self._t.Get(flags, o + self._t.Pos) if o else 0

    def table(self, slot: int) -> _Reader | None:
        o = self._field(slot)
        return _Reader(self._t.Bytes, self._t.Indirect(o + self._t.Pos)) if o else None

    def tables(self, slot: int) -> list[_Reader]:
        o = self._field(slot)
        if not o:
            return []
        start = self._t.Vector(o)
        count = self._t.VectorLen(o)
        return [_Reader(self._t.Bytes, self._t.Indirect(start + 4 * i)) for i in range(count)]

    def floats(self, slot: int) -> list[float]:
        o = self._field(slot)
        if not o:
            return []
        return [float(v) for v in self._t.GetVectorAsNumpy(number_types.Float32Flags, o)]
