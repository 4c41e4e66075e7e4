"""Which models to bench: expand files and export directories, read metadata, load Predictors.

Every model is loaded through ``edge.export.formats`` (its spec comes from its own metadata). A
``.tflite``/``.onnx`` file without edge metadata is run by ``edge.bench.foreign`` when the user
gave ``--labels`` (and, for float inputs, ``--mean``/``--std``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge import contract
from edge.errors import EdgeError
from edge.export import formats as registry
from edge.export.base import QUANTIZE_KINDS
from edge.spec import SPEC_FILE

EXPORT_REPORT = "export_report.json"  # edge.export.pipeline.REPORT_FILE (kept import-light)
REJECTED_DIR = "rejected"
MODEL_SUFFIXES = (".tflite", ".onnx", ".mlpackage", ".keras")
EXTRA_KINDS = ("palettize4", "palettize6", "palettize8")


@dataclass
class ModelRef:
    """One model file to bench, with what is known before loading it."""

    path: Path
    format: str  # tflite | onnx | coreml | keras
    quantize: str = ""  # fp32 | fp16 | dynamic | int8 | ... ("" when unknown)
    source_run: str = ""  # the run it was exported from, when known

    @property
    def name(self) -> str:
        return self.path.name


def expand(paths) -> list[ModelRef]:
    """Files as given, directories as all the models they hold (an export dir: its passed artifacts)."""
    refs: list[ModelRef] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise EdgeError(f"Model file {path} does not exist.")
        if path.is_dir() and path.suffix.lower() != ".mlpackage":
            refs += _directory(path)
        else:
            refs.append(_ref(path))
    seen, unique = set(), []
    for ref in refs:
        key = ref.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(ref)
    if not unique:
        raise EdgeError("No model to bench; pass .tflite, .onnx, .mlpackage or .keras files, or an export directory.")
    return unique


def _ref(path: Path, quantize: str = "", source_run: str = "") -> ModelRef:
    fmt = registry.for_path(path).name
    return ModelRef(path, fmt, quantize or quantize_from_name(path), source_run)


def _directory(path: Path) -> list[ModelRef]:
    report = path / EXPORT_REPORT
    if report.is_file():
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EdgeError(f"{report} is not a readable export report ({exc}).") from exc
        refs = []
        for entry in data.get("entries", []):
            artifact = Path(entry.get("path") or "")
            if entry.get("status") in ("passed", "not verified") and artifact.name:
                artifact = artifact if artifact.exists() else path / artifact.name
                if artifact.exists():
                    refs.append(_ref(artifact, entry.get("quantize", ""), data.get("source", "")))
        if refs:
            return refs
    if (path / SPEC_FILE).is_file() and (path / "model.keras").exists():  # a run directory
        return [_ref(path / "model.keras", "fp32", str(path))]
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in MODEL_SUFFIXES and not p.name.startswith("."))
    if not found:
        raise EdgeError(f"{path} contains no model files ({', '.join(MODEL_SUFFIXES)}).")
    return [_ref(p) for p in found]


def quantize_from_name(path: Path) -> str:
    """The kind in edge's artifact names ``<name>_<kind><suffix>``; ``fp32`` for ``.keras``."""
    if path.suffix.lower() == ".keras":
        return "fp32"
    tail = path.stem.rsplit("_", 1)[-1].lower()
    return tail if tail in QUANTIZE_KINDS or tail in EXTRA_KINDS else ""


def read_metadata(ref: ModelRef) -> dict[str, str]:
    """edge's key/values of the artifact ({} when it has none); raises EdgeError if it is not a model."""
    if ref.format == "tflite":
        from edge.export import tflite_metadata

        try:
            return tflite_metadata.read_metadata(ref.path)
        except EdgeError as exc:
            if "no edge metadata" in str(exc):
                return {}
            raise
    if ref.format == "onnx":
        from edge.export import onnx as onnx_format

        return onnx_format.read_metadata(ref.path)
    if ref.format == "keras":
        spec = ref.path.parent / SPEC_FILE
        if not spec.is_file():
            return {}
        run = str(ref.path.parent) if ref.path.name == "model.keras" else ""
        return {contract.KEY_SPEC: spec.read_text(encoding="utf-8"), contract.KEY_SOURCE_RUN: run}
    return {}  # Core ML: read by its loader (coremltools); the source run comes from the export report


def source_run(ref: ModelRef, metadata: dict[str, str]) -> Path | None:
    """The finished run directory this model came from, when it still exists."""
    for candidate in (metadata.get(contract.KEY_SOURCE_RUN, ""), ref.source_run):
        if candidate:
            path = Path(candidate)
            if not path.is_absolute() and not path.exists():
                path = ref.path.parent / candidate
            if (path / SPEC_FILE).is_file() and (path / "model.keras").exists():
                return path
    return None


def load(ref: ModelRef, threads: int | None, foreign_options=None):
    """A Predictor for ``ref`` (edge artifact via the format registry, or a foreign model)."""
    metadata = read_metadata(ref)
    if ref.format in ("tflite", "onnx") and contract.KEY_SPEC not in metadata:
        from edge.bench import foreign

        return foreign.load(ref, threads, foreign_options)
    if ref.format == "keras" and contract.KEY_SPEC not in metadata:
        raise EdgeError(f"No {SPEC_FILE} next to {ref.path}; a .keras model needs the spec written by edge train.")
    try:
        return registry.get(ref.format).load(ref.path, threads=threads)
    except EdgeError:
        raise
    except Exception as exc:  # noqa: BLE001  (a runtime refusing the file: not a model, corrupt)
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EdgeError(f"{ref.path} could not be loaded as a {ref.format} model ({text}).") from exc
