"""What every export format offers: the ``Format`` record, ``Predictor``, ``Artifact``, ``Budget``.

A format module (``edge.export.tflite``, ``.onnx``, ``.coreml``, and ``.keras_model`` for the
reference) defines one ``FORMAT = Format(...)``: ``export(...) -> Artifact`` and
``load(path) -> Predictor``, plus the verification budget of each quantization kind it offers.
The registry (``edge.export.formats``) finds them; export's gate and ``edge bench`` only ever
talk to this surface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.spec import ModelSpec

QUANTIZE_KINDS = ("fp32", "fp16", "dynamic", "int8")  # the --quantize vocabulary


class Predictor(Protocol):
    """A loaded model: uint8 RGB images (N, H, W, 3) at the spec's input size -> probabilities (N, C).

    Runtime predictors also offer ``bench_call(images) -> Callable[[], object]``: the input
    prepared once, and a call that does only the engine's own work (what ``edge bench`` times).
    """

    spec: ModelSpec
    runtime: str  # e.g. "LiteRT 2.3.0 (XNNPACK, 2 threads)"; names the engine in reports

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


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
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific extras (e.g. Core ML)


@dataclass(frozen=True)
class Format:
    """One export target: how to write it, how to run it, and the budget of each kind."""

    name: str  # "tflite" | "onnx" | "coreml" | "keras"
    suffix: str  # ".tflite" | ".onnx" | ".mlpackage" | ".keras"
    quantize_kinds: tuple[str, ...]
    default_quantize: tuple[str, ...]
    # export(model, spec, quantize, out_path, calibration, options) -> Artifact
    #   model: the tf_keras model (float32 raw-pixel input); calibration: uint8 (N, H, W, 3) or None;
    #   out_path: where to write (a temporary name; the pipeline renames it once verified).
    export: Callable[..., Artifact]
    load: Callable[..., Predictor]  # load(path, threads=None) -> Predictor (spec from the artifact)
    budgets: Mapping[str, Budget]  # per quantize kind
    verified_by: str  # e.g. "LiteRT 2.3.0", "onnxruntime 1.31.1"; "" when it cannot run here
    needs_calibration: tuple[str, ...] = ("int8",)  # kinds that need representative images

    def artifact_name(self, spec: ModelSpec, quantize: str) -> str:
        return f"{spec.name}_{quantize}{self.suffix}"

    def budget(self, quantize: str, max_drop_pts: float | None = None) -> Budget:
        budget = self.budgets.get(quantize, COMPRESSED_BUDGET)
        if max_drop_pts is not None and budget.max_drop_pts is not None:
            budget = Budget(budget.min_agreement, budget.max_prob_diff, max_drop_pts)
        return budget


# Kept for modules that want a plain mapping; ``edge.export.formats`` fills it lazily.
FORMATS: dict[str, Format] = {}


def path_size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def batched(images: np.ndarray, batch: int):
    """Yield consecutive slices of ``images`` of at most ``batch`` items."""
    for start in range(0, len(images), batch):
        yield images[start : start + batch]
