"""``export(...)``: the Python API behind ``edge export``.

For every requested (format, quantization) pair: convert to a hidden temporary file, run it and
the Keras model on the held-out images through the artifact's own runtime, check the format's
budget, and only then rename it to ``<name>_<quantize><suffix>``. An artifact over budget is moved
to ``rejected/`` and reported as failed. Each pair is independent: one converter failing never
loses the others. The result is ``export_report.json`` in the output directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import verify as verification
from edge.errors import EdgeError
from edge.export import formats as registry
from edge.export.base import DEFAULT_MAX_DROP_PTS, Artifact, ExportOptions, Format, QUANTIZE_KINDS
from edge.fileio import atomic_write_text, remove, replace
from edge.rundir import Run, Sample, open_run
from edge.spec import SPEC_FILE, ModelSpec

REPORT_FILE = "export_report.json"
REJECTED_DIR = "rejected"
DEFAULT_OUT = "export"  # inside the run directory

# Status of one report entry.
PASSED = "passed"
FAILED = "failed"  # over budget: the file is in rejected/, not under its final name
ERROR = "error"  # the converter or the runtime failed; no file
NOT_VERIFIED = "not verified"  # written but not executed (verification off, or no runtime here)


@dataclass
class Entry:
    """One artifact's line in the report."""

    format: str
    quantize: str
    path: str = ""
    status: str = ERROR
    size_bytes: int = 0
    export_seconds: float = 0.0
    verify_seconds: float = 0.0
    agreement: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    drop_pts: float | None = None
    max_prob_diff: float | None = None
    mean_prob_diff: float | None = None
    verified_by: str = ""
    budget: dict[str, float | None] = field(default_factory=dict)
    reason: str = ""  # why it failed, in one line
    details: dict[str, Any] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # --int8-auto remedies tried

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, NOT_VERIFIED)


@dataclass
class ExportReport:
    source: str
    out_dir: str
    model_name: str
    held_out: str
    held_out_count: int
    reference_accuracy: float | None
    reference_runtime: str
    entries: list[Entry]
    skipped: list[str] = field(default_factory=list)  # requested kinds a format does not have
    options: dict[str, Any] = field(default_factory=dict)
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / REPORT_FILE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass
class Source:
    """What is being exported: the model file, its spec, and (for a run) the run."""

    model_path: Path
    spec: ModelSpec
    run: Run | None

    @property
    def label(self) -> str:
        return str(self.run.path if self.run else self.model_path)


def resolve_source(path: str | Path) -> Source:
    """A run directory, or a ``.keras`` file with ``spec.json`` beside it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise EdgeError(f"{path} does not exist; pass a run directory or a .keras model.")
    if path.is_dir():
        run = open_run(path)
        return Source(run.model_path, run.spec, run)
    if path.suffix.lower() != ".keras":
        raise EdgeError(f"{path} is neither a run directory nor a .keras model.")
    if not (path.parent / SPEC_FILE).is_file():
        raise EdgeError(f"No {SPEC_FILE} next to {path}; a .keras model needs the spec written by edge train.")
    spec = ModelSpec.load(path.parent / SPEC_FILE)
    if (path.parent / "model.keras").resolve() == path.resolve():
        try:
            return Source(path, spec, open_run(path.parent))
        except EdgeError:
            pass
    return Source(path, spec, None)


def plan(format_names: Sequence[str], quantize: Sequence[str] | None) -> tuple[list[tuple[Format, str]], list[str]]:
    """(format, kind) pairs to export, and the requested kinds a format does not offer."""
    if not format_names:
        raise EdgeError("No format given; choose from " + ", ".join(registry.names()) + ".")
    for kind in quantize or ():
        if kind not in QUANTIZE_KINDS and not any(kind in _kinds_of(n) for n in format_names):
            raise EdgeError(f"Unknown quantization '{kind}'; choose from {', '.join(QUANTIZE_KINDS)}.")
    pairs, skipped = [], []
    seen = set()
    for name in format_names:
        if name in seen:
            continue
        seen.add(name)
        fmt = registry.get(name)
        kinds = fmt.default_quantize if not quantize else [k for k in quantize if k in fmt.quantize_kinds]
        skipped += [f"{name} has no {k}" for k in (quantize or ()) if k not in fmt.quantize_kinds]
        pairs += [(fmt, k) for k in dict.fromkeys(kinds)]
    if not pairs:
        raise EdgeError("None of the requested quantization kinds exists for the requested formats (" + "; ".join(skipped) + ").")
    return pairs, skipped


def _kinds_of(name: str) -> tuple[str, ...]:
    try:
        return registry.get(name).quantize_kinds
    except EdgeError:
        return ()


def held_out_samples(source: Source, data: str | Path | None) -> tuple[list[Sample], str]:
    """The labelled images the gate runs on: ``--data`` class folders, else the run's held-out split."""
    if data is not None:
        return data_samples(Path(data), source.spec), str(data)
    if source.run is None:
        raise EdgeError("A .keras model outside its run has no held-out images; pass --data DIR (class folders).")
    samples = source.run.held_out()
    if not samples:
        raise EdgeError(f"The run {source.run.path} has no test or validation split; pass --data DIR.")
    return samples, f"{source.run.path} held-out split"


def data_samples(data: Path, spec: ModelSpec) -> list[Sample]:
    """Images of a class-folder dataset, labelled by the spec's label order (unknown classes refused)."""
    from edge.data.scan import scan

    scanned = scan(data, min_per_class=1)
    index = {label: i for i, label in enumerate(spec.labels)}
    unknown = [label for label in scanned.labels if label not in index]
    if unknown:
        raise EdgeError(f"--data {data} has classes the model does not know: {', '.join(unknown[:5])}.")
    samples = scanned.samples or scanned.presplit.get("test") or [s for group in scanned.presplit.values() for s in group]
    return [Sample(s.path, index[scanned.labels[s.label]]) for s in samples]


def calibration_samples(source: Source, held_out: list[Sample]) -> list[Sample]:
    if source.run is not None:
        train = source.run.samples("train")
        if train:
            return train
    return held_out


def export(
    source: str | Path,
    formats: Sequence[str] = ("tflite",),
    quantize: Sequence[str] | None = None,
    out: str | Path | None = None,
    data: str | Path | None = None,
    max_drop: float = DEFAULT_MAX_DROP_PTS,
    force: bool = False,
    verify: bool = True,
    int8_io: str = "uint8",
    calibration_count: int = 200,
    opset: int = 17,
    per_channel: bool = True,
    int8_auto: bool = False,
    qat: bool = False,
    qat_epochs: int = 2,
    threads: int | None = None,
    on_entry: Callable[[Entry], None] | None = None,
) -> ExportReport:
    """Export ``source`` (run dir or .keras) to every requested format and kind, verifying each."""
    from edge.console import console
    from edge.export.calibration import representative_images
    from edge.export.keras_model import KerasPredictor, load_keras

    started = time.perf_counter()
    src = resolve_source(source)
    spec = src.spec
    pairs, skipped = plan([f.strip().lower() for f in formats], list(quantize) if quantize else None)
    out_dir = Path(out).expanduser() if out else (src.run.path / DEFAULT_OUT if src.run else src.model_path.parent / DEFAULT_OUT)
    if calibration_count < 1:
        raise EdgeError("--calibration-count must be at least 1.")
    existing = [out_dir / fmt.artifact_name(spec, kind) for fmt, kind in pairs]
    existing = [p for p in existing if p.exists()]
    if existing and not force:
        names = ", ".join(p.name for p in existing[:4])
        raise EdgeError(f"{names} already exist{'s' if len(existing) == 1 else ''} in {out_dir}; pass --force to overwrite.")

    if verify or data is not None or src.run is not None:
        samples, held_out_label = held_out_samples(src, data)
    else:  # --no-verify on a bare .keras: nothing to run; int8 calibration will ask for --data
        samples, held_out_label = [], "none (--no-verify)"
    images = _load(samples, spec)
    labels = np.array([s.label for s in samples], int)
    model = load_keras(src.model_path)
    reference = KerasPredictor(model, spec)
    with console.status("Running the Keras model on the held-out images..."):
        reference_probs = reference(images)
    reference_accuracy = float(np.mean(reference_probs.argmax(1) == labels)) if len(labels) else None

    calibration_cache: dict[int, np.ndarray] = {}

    def calibration(count: int = calibration_count) -> np.ndarray:
        if count not in calibration_cache:
            calibration_cache[count] = representative_images(calibration_samples(src, samples), spec.input_size,
                                                              count, spec.seed)
        return calibration_cache[count]

    options = ExportOptions(source_run=src.label, int8_io=int8_io, opset=opset, per_channel=per_channel,
                            calibration_count=calibration_count)
    context = _Context(model=model, spec=spec, out_dir=out_dir, images=images, labels=labels,
                       reference_probs=reference_probs, calibration=calibration, options=options,
                       max_drop=max_drop, verify=verify, threads=threads, source=src, qat_epochs=qat_epochs)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    for fmt, kind in pairs:
        with console.status(f"Exporting {fmt.name} {kind}..."):
            if kind == "int8" and qat and fmt.name == "tflite":
                from edge.export.qat import export_qat

                entry = export_qat(context, fmt)
            else:
                entry = export_one(context, fmt, kind)
            if entry.status == FAILED and int8_auto and kind == "int8" and fmt.name in ("tflite", "onnx"):
                from edge.export.int8_auto import improve

                entry = improve(context, fmt, entry)
        entries.append(entry)
        if on_entry:
            on_entry(entry)
    report = ExportReport(
        source=src.label, out_dir=str(out_dir), model_name=spec.name, held_out=held_out_label,
        held_out_count=int(len(samples)), reference_accuracy=reference_accuracy, reference_runtime=reference.runtime,
        entries=entries, skipped=skipped,
        options={"max_drop_pts": max_drop, "int8_io": int8_io, "calibration_count": calibration_count, "opset": opset,
                 "per_channel": per_channel, "int8_auto": int8_auto, "qat": qat, "verify": verify},
        total_seconds=time.perf_counter() - started,
    )
    atomic_write_text(report.path, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


@dataclass
class _Context:
    """Everything one artifact's export + verification needs (shared by int8-auto and QAT)."""

    model: Any
    spec: ModelSpec
    out_dir: Path
    images: np.ndarray
    labels: np.ndarray
    reference_probs: np.ndarray
    calibration: Callable[..., np.ndarray]
    options: ExportOptions
    max_drop: float
    verify: bool
    threads: int | None
    source: Source
    qat_epochs: int = 2


def _load(samples: list[Sample], spec: ModelSpec) -> np.ndarray:
    from edge.data.images import ImageReadError, load_images

    try:
        return load_images([s.path for s in samples], spec.input_size)
    except (ImageReadError, FileNotFoundError) as exc:
        raise EdgeError(f"Could not read a held-out image ({exc}); was the dataset moved since training?") from exc


def export_one(ctx: _Context, fmt: Format, kind: str, model=None, options: ExportOptions | None = None,
               calibration_count: int | None = None, finalize: bool = True) -> Entry:
    """Convert, verify and (if within budget and ``finalize``) rename one artifact."""
    final = ctx.out_dir / fmt.artifact_name(ctx.spec, kind)
    temp = ctx.out_dir / f".{final.stem}.partial{fmt.suffix}"
    entry = Entry(format=fmt.name, quantize=kind, verified_by=fmt.verified_by,
                  budget=fmt.budget(kind, ctx.max_drop).to_dict())
    remove(temp)
    try:
        calibration = ctx.calibration(calibration_count or ctx.options.calibration_count) if kind in fmt.needs_calibration else None
        artifact: Artifact = fmt.export(model if model is not None else ctx.model, ctx.spec, kind, temp, calibration,
                                        options or ctx.options)
    except Exception as exc:  # noqa: BLE001  (one converter failing must not stop the others)
        remove(temp)
        entry.reason = _one_line(exc)
        return entry
    entry.size_bytes, entry.export_seconds, entry.details = artifact.size_bytes, artifact.convert_seconds, artifact.details
    if ctx.verify:
        _verify(ctx, fmt, kind, temp, entry)
    else:
        entry.status, entry.verified_by = NOT_VERIFIED, ""
        entry.reason = "verification turned off (--no-verify)"
    if not finalize:
        entry.path = str(temp)
        return entry
    return finish(ctx, fmt, entry, temp, final)


def finish(ctx: _Context, fmt: Format, entry: Entry, temp: Path, final: Path) -> Entry:
    """Rename a passed/unverified artifact to its final name; move a failed one to ``rejected/``."""
    if entry.ok:
        replace(temp, final)
        entry.path = str(final)
    elif entry.status == FAILED:
        rejected = ctx.out_dir / REJECTED_DIR / final.name
        rejected.parent.mkdir(parents=True, exist_ok=True)
        replace(temp, rejected)
        remove(final)  # an older artifact under this name (--force) would be mistaken for this one
        entry.path = str(rejected)
    else:
        remove(temp)
    return entry


def _verify(ctx: _Context, fmt: Format, kind: str, path: Path, entry: Entry) -> None:
    start = time.perf_counter()
    try:
        predictor = fmt.load(path, threads=ctx.threads)
        probs = predictor(ctx.images)
        result = verification.compare(ctx.reference_probs, probs, ctx.labels)
    except Exception as exc:  # noqa: BLE001
        entry.verify_seconds = time.perf_counter() - start
        if fmt.name == "coreml":  # the format cannot always be executed off Apple platforms
            entry.status, entry.verified_by = NOT_VERIFIED, ""
            entry.reason = f"not verified: {_one_line(exc)}"
        else:
            entry.status, entry.reason = ERROR, f"{fmt.verified_by or fmt.name} could not run it: {_one_line(exc)}"
        return
    entry.verify_seconds = time.perf_counter() - start
    entry.verified_by = getattr(predictor, "runtime", fmt.verified_by) or fmt.verified_by
    for key, value in result.to_dict().items():
        if key != "count":
            setattr(entry, key, value)
    reasons = fmt.budget(kind, ctx.max_drop).failures(result.agreement, result.max_prob_diff, result.drop_pts)
    entry.status = FAILED if reasons else PASSED
    entry.reason = "; ".join(reasons)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:240]
