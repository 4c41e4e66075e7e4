"""The format registry: one ``Format`` record per model format, and the table that finds them.

A format is one module under ``edge.export.formats`` (``tflite``, ``onnx``, ``coreml``, and
``keras`` for the reference) defining ``FORMAT = Format(...)`` -- how to export it, how to read
its metadata, which runtime runs it here, its budgets and what it cannot do on this OS -- plus one
line in ``REGISTRY`` below. Export's gate, ``edge bench`` and ``edge predict`` only ever talk to
this surface; nothing outside a format's module compares a format's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, one_line
from edge.runtimes import Predictor
from edge.spec import ModelSpec


@dataclass
class Artifact:
    """One exported file (or .mlpackage directory) and how it was made."""

    path: Path
    format: str  # tflite | onnx | coreml | keras
    quantize: str  # fp32 | fp16 | dynamic | int8 | ...
    size_bytes: int = 0
    convert_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # input/output dtypes, opset, calibration, ...


@dataclass(frozen=True)
class Budget:
    """Verification budget of one artifact kind (see the export issue for the defaults)."""

    min_agreement: float | None = None  # top-1 agreement with the Keras model, 0..1
    max_prob_diff: float | None = None  # max |p_artifact - p_keras|
    max_drop_pts: float | None = None  # accuracy drop in points (reference minus artifact)

    def failures(self, agreement: float, max_prob_diff: float, drop_pts: float) -> list[str]:
        """Human-readable reasons this result misses the budget (empty when it meets it)."""
        reasons = []
        if self.min_agreement is not None and not agreement >= self.min_agreement:
            reasons.append(f"agreement {agreement:.2%} < {self.min_agreement:.2%}")
        if self.max_prob_diff is not None and not max_prob_diff <= self.max_prob_diff:
            reasons.append(f"max prob diff {max_prob_diff:.2g} > {self.max_prob_diff:.2g}")
        if self.max_drop_pts is not None and not drop_pts <= self.max_drop_pts:
            reasons.append(f"accuracy drop {drop_pts:.2f} pts > {self.max_drop_pts:.2f} pts")
        return reasons

    def to_dict(self) -> dict[str, float | None]:
        return {
            "min_agreement": self.min_agreement,
            "max_prob_diff": self.max_prob_diff,
            "max_drop_pts": self.max_drop_pts,
        }


# Defaults from the issue: fp32 near-identical, fp16 close, anything integer/compressed judged by
# its accuracy drop (``--max-drop`` overrides ``max_drop_pts``).
FP32_BUDGET = Budget(min_agreement=0.995, max_prob_diff=1e-3)
FP16_BUDGET = Budget(min_agreement=0.99)
DEFAULT_MAX_DROP_PTS = 1.0
COMPRESSED_BUDGET = Budget(max_drop_pts=DEFAULT_MAX_DROP_PTS)


@dataclass
class ExportOptions:
    """Knobs a format's ``export`` may read; each format ignores the ones that do not apply."""

    source_run: str = ""  # recorded in the artifact metadata
    int8_io: str = "uint8"  # full-int8 TFLite input/output type: "uint8" or "int8"
    opset: int = 17  # ONNX opset
    per_channel: bool = True  # ONNX static int8: per-channel weight scales
    calibration_count: int = 200  # representative images drawn from the training split
    float_layers: tuple[str, ...] = ()  # layers kept in float (mixed precision int8 remedy)
    coreml_target: str = "ios16"  # Core ML minimum deployment target (ios16 | ios17 | ios18)
    author: str = ""  # model author shown by Xcode and metadata readers ("" = the user running edge)
    license: str = ""
    version: str = ""  # model version ("" = the spec's model_version)
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific extras (e.g. Core ML weight_threshold)


@dataclass(frozen=True)
class Format:
    """One model format: everything format-specific lives in this record (and its own module).

    Code outside a format's module asks the record (``fmt.is_dir``, ``fmt.runs_here``,
    ``fmt.remedies`` ...) and never compares a format's name.
    """

    name: str  # registry key, the --format word
    display_name: str  # how people call it: "TFLite", "Core ML"
    suffix: str  # ".tflite" | ".onnx" | ".mlpackage" | ".keras"
    quantize_kinds: tuple[str, ...]
    default_quantize: tuple[str, ...]
    # export(model, spec, quantize, out_path, calibration, options) -> Artifact; None: not an export
    #   target (the Keras reference). model: the tf_keras model (float32 raw-pixel input);
    #   calibration: uint8 (N, H, W, 3) or None; out_path: a temporary name (the gate renames it).
    export: Callable[..., Artifact] | None
    load: Callable[..., Predictor]  # load(path, threads=None) -> Predictor (spec from the artifact)
    read_metadata: Callable[[Path], dict[str, str]]  # edge's key/values ({} when it has none)
    budgets: Mapping[str, Budget]  # per quantize kind
    verified_by: str  # e.g. "LiteRT 2.3.0", "onnxruntime 1.31.1"
    runtime: str = ""  # the runtime family that runs it here (edge.runtimes module name)
    is_dir: bool = False  # an artifact is a directory (a package), not a file
    needs_calibration: tuple[str, ...] = ("int8",)  # kinds that need representative images
    # load_foreign(path, threads, labels, normalization) -> Predictor for a file without edge metadata
    load_foreign: Callable[..., Predictor] | None = None
    # False: failing to execute here means "not verified" rather than an error (Core ML off macOS)
    always_runs_here: bool = True
    latency_note: str = ""  # "" when latency can be measured here, else why not ("n/a on this OS")
    per_load_threads: bool = True  # the runtime takes a thread count per loaded model
    thread_note: str = ""  # why a thread sweep gives this format one row (when per_load_threads is False)
    remedies: tuple[str, ...] = ()  # names of the int8 remedies (edge.export.remedies) that apply
    # inspect(path, predictor) -> {"kind": str, "warnings": [str]}: facts read from the artifact itself
    inspect: Callable[..., dict[str, Any]] | None = None
    bench_note: str = ""  # a line for bench.md when this format is in the table
    options: tuple[str, ...] = ()  # ExportOptions fields this format reads (for --help and docs)
    # check_options(options, kinds) raises EdgeError for options this format cannot honour (before any work)
    check_options: Callable[[ExportOptions, tuple[str, ...]], None] | None = None
    # MediaPipe Tasks' ImageClassifier takes this format: edge bench's "mediapipe" entry (edge.runtimes.mediapipe)
    runs_in_mediapipe: bool = False

    @property
    def exportable(self) -> bool:
        return self.export is not None

    def artifact_name(self, spec: ModelSpec, quantize: str) -> str:
        return f"{spec.name}_{quantize}{self.suffix}"

    def budget(self, quantize: str, max_drop_pts: float | None = None) -> Budget:
        budget = self.budgets.get(quantize, COMPRESSED_BUDGET)
        if max_drop_pts is not None and budget.max_drop_pts is not None:
            budget = Budget(budget.min_agreement, budget.max_prob_diff, max_drop_pts)
        return budget


# ---------------------------------------------------------------------------------------------
# The registry: one line per format. A format is its module (which defines ``FORMAT``) plus this
# line; modules are imported on first use, so importing edge stays cheap.
# ---------------------------------------------------------------------------------------------
REGISTRY: dict[str, str] = {
    "tflite": "edge.export.formats.tflite",
    "onnx": "edge.export.formats.onnx",
    "coreml": "edge.export.formats.coreml",
    "keras": "edge.export.formats.keras",  # the reference every artifact is verified against
}
_LOADED: dict[str, Format] = {}


def get(name: str) -> Format:
    """The registered ``Format`` called ``name`` (imports its module on first use)."""
    key = str(name).strip().lower()
    if key in _LOADED:
        return _LOADED[key]
    if key not in REGISTRY:
        raise EdgeError(f"Unknown format '{name}'; choose from {', '.join(names())}.")
    module_name = REGISTRY[key]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise EdgeError(f"{key} is not available in this installation.") from exc
        raise EdgeError(f"{key} is not available ({exc.name} is not installed).") from exc
    except ImportError as exc:
        raise EdgeError(f"{key} is not available ({one_line(exc)}).") from exc
    fmt = getattr(module, "FORMAT", None)
    if not isinstance(fmt, Format) or fmt.name != key:
        raise EdgeError(f"{key} is not available ({module_name} defines no FORMAT named {key}).")
    _LOADED[key] = fmt
    return fmt


def all_formats() -> list[Format]:
    return [get(name) for name in REGISTRY]


def names() -> tuple[str, ...]:
    """What ``--format`` accepts: every format that is an export target (not the reference)."""
    return tuple(name for name in REGISTRY if get(name).exportable)


def export_target(name: str) -> Format:
    """The ``Format`` for a ``--format`` word; the reference format is refused with one sentence."""
    fmt = get(name)
    if not fmt.exportable:
        raise EdgeError(f"'{name}' is the reference format, not an export target; choose from {', '.join(names())}.")
    return fmt


def suffixes() -> tuple[str, ...]:
    return tuple(fmt.suffix for fmt in all_formats())


def quantize_vocabulary() -> tuple[str, ...]:
    """Every quantize kind some export format offers, in registry order."""
    kinds: dict[str, None] = {}
    for name in names():
        kinds.update(dict.fromkeys(get(name).quantize_kinds))
    return tuple(kinds)


def reference() -> Format:
    """The format of the model every artifact is verified against (the one that is no export target)."""
    return next(fmt for fmt in all_formats() if not fmt.exportable)


def for_path(path: str | Path) -> Format:
    """The format of an artifact by its suffix (``.tflite``, ``.onnx``, ``.mlpackage``, ``.keras``)."""
    suffix = Path(path).suffix.lower()
    for fmt in all_formats():
        if suffix == fmt.suffix:
            return fmt
    raise EdgeError(f"Cannot tell the model format of {path}; expected a file ending in {', '.join(suffixes())}.")


def is_model_path(path: Path) -> bool:
    """Whether ``path`` looks like a model edge can run (by suffix, and file vs directory)."""
    suffix = path.suffix.lower()
    return any(suffix == fmt.suffix and path.is_dir() == fmt.is_dir for fmt in all_formats())


def read_metadata(path: str | Path, fmt: Format | None = None) -> dict[str, str]:
    """edge's key/values of a model file ({} when it has none); one sentence when it is no readable model."""
    path = Path(path)
    fmt = fmt or for_path(path)
    try:
        return fmt.read_metadata(path)
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"{path} is not a readable {fmt.display_name} model ({one_line(exc)}).") from exc


def kind_from_name(path: str | Path, fmt: Format | None = None) -> str:
    """The quantize kind in edge's artifact names ``<name>_<kind><suffix>`` ("" when it names none);
    the only kind of a one-kind format."""
    path = Path(path)
    fmt = fmt or for_path(path)
    if len(fmt.quantize_kinds) == 1:
        return fmt.quantize_kinds[0]
    tail = path.stem.rsplit("_", 1)[-1].lower()
    return tail if tail in quantize_vocabulary() else ""


def load(path: str | Path, threads: int | None = None) -> Predictor:
    """Load any artifact edge can run as a ``Predictor`` (its spec comes from its own metadata)."""
    path = Path(path)
    if not path.exists():
        raise EdgeError(f"Model file {path} does not exist.")
    return for_path(path).load(path, threads=threads)
