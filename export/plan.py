"""``ExportOptions`` validated into an ``ExportPlan``: which (format, kind) pairs, with which knobs.

The API and the CLI build the same plan, so both refuse the same values with the same sentence.
Defaults live here (and in ``edge.formats``); the CLI reads them from ``ExportSettings()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from edge import formats as registry
from edge.errors import EdgeError
from edge.formats import DEFAULT_MAX_DROP_PTS, ExportOptions, Format

INT8_IO_TYPES = ("uint8", "int8")
OPSET_RANGE = (13, 21)  # ONNX opsets tf2onnx and onnxruntime both support here


@dataclass
class ExportSettings:
    """Every option of ``edge export`` with its default (the CLI shows these)."""

    formats: tuple[str, ...] = ("tflite",)
    quantize: tuple[str, ...] | None = None  # None: each format's defaults
    max_drop: float = DEFAULT_MAX_DROP_PTS
    force: bool = False
    verify: bool = True
    int8_io: str = "uint8"
    calibration_count: int = 200
    opset: int = 17
    per_channel: bool = True
    int8_auto: bool = False
    qat: bool = False
    qat_epochs: int = 2
    threads: int | None = None
    coreml_target: str = "ios16"  # the widest Core ML target every default kind works on
    author: str = ""  # "" = the user running edge
    license: str = ""
    model_version: str = ""  # "" = the spec's model_version

    def __post_init__(self) -> None:
        self.formats = tuple(_words(self.formats))
        self.quantize = tuple(_words(self.quantize)) or None if self.quantize is not None else None
        if not self.formats:
            raise EdgeError("No format given; choose from " + ", ".join(registry.names()) + ".")
        if not self.max_drop >= 0:
            raise EdgeError(f"--max-drop must be a number of points of at least 0, not {self.max_drop}.")
        if self.int8_io not in INT8_IO_TYPES:
            raise EdgeError(f"--int8-io must be {' or '.join(INT8_IO_TYPES)}, not '{self.int8_io}'.")
        if self.calibration_count < 1:
            raise EdgeError("--calibration-count must be at least 1.")
        if not OPSET_RANGE[0] <= self.opset <= OPSET_RANGE[1]:
            raise EdgeError(f"--opset must be between {OPSET_RANGE[0]} and {OPSET_RANGE[1]}, not {self.opset}.")
        if self.qat_epochs < 1:
            raise EdgeError("--qat-epochs must be at least 1.")
        if self.threads is not None and self.threads < 1:
            raise EdgeError("--threads must be at least 1.")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _words(value: str | Sequence[str] | None) -> list[str]:
    """``"tflite, onnx"`` or ``["tflite", "onnx"]`` -> ``["tflite", "onnx"]`` (lower case, no blanks)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return [item.strip().lower() for item in items if item.strip()]


@dataclass
class ExportPlan:
    settings: ExportSettings
    pairs: list[tuple[Format, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # requested kinds a format does not have


def make_plan(settings: ExportSettings) -> ExportPlan:
    """(format, kind) pairs to export, and the requested kinds a format does not offer."""
    targets = [registry.export_target(name) for name in dict.fromkeys(settings.formats)]
    vocabulary = registry.quantize_vocabulary()
    for kind in settings.quantize or ():
        if kind not in vocabulary:
            raise EdgeError(f"Unknown quantization '{kind}'; choose from {', '.join(vocabulary)}.")
    plan = ExportPlan(settings)
    options = export_options(settings, source_run="")
    for fmt in targets:
        wanted = settings.quantize or fmt.default_quantize
        plan.skipped += [f"{fmt.name} has no {k}" for k in wanted if k not in fmt.quantize_kinds]
        kinds = tuple(k for k in dict.fromkeys(wanted) if k in fmt.quantize_kinds)
        if fmt.check_options is not None:
            fmt.check_options(options, kinds)  # e.g. a Core ML kind its deployment target cannot hold
        plan.pairs += [(fmt, k) for k in kinds]
    if not plan.pairs:
        raise EdgeError("None of the requested quantization kinds exists for the requested formats ("
                        + "; ".join(plan.skipped) + ").")
    return plan


def export_options(settings: ExportSettings, source_run: str) -> ExportOptions:
    """What the format modules read, from the validated settings."""
    return ExportOptions(source_run=source_run, int8_io=settings.int8_io, opset=settings.opset,
                         per_channel=settings.per_channel, calibration_count=settings.calibration_count,
                         coreml_target=settings.coreml_target, author=settings.author, license=settings.license,
                         version=settings.model_version)
