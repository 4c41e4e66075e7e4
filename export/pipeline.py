"""``export(...)``: the Python API behind ``edge export`` -- plan, run every artifact, report.

For every planned (format, kind) pair the gate (``edge.export.gate``) converts aside, verifies
against the Keras model on the held-out images and names or rejects the file; remedies
(``edge.export.remedies``) run when asked. Pairs are independent: one converter failing never
loses the others. ``export_report.json`` is rewritten after every artifact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from edge.artifacts import DEFAULT_EXPORT_DIR, FAILED
from edge.errors import EdgeError
from edge.export import remedies
from edge.export.gate import ExportContext, export_one
from edge.export.plan import ExportSettings, export_options, make_plan
from edge.export.remedies.base import INT8
from edge.export.report import Entry, ExportReport
from edge.export.source import Source, check_model_matches_spec, load_images, resolve_source
from edge.fileio import probe_writable
from edge.runtimes.tensorflow import KerasPredictor, load_keras


def export(
    source: str | Path | None = None,
    formats: str | tuple[str, ...] | list[str] = ExportSettings.formats,
    quantize: str | tuple[str, ...] | list[str] | None = None,
    out: str | Path | None = None,
    data: str | Path | None = None,
    *,
    quiet: bool = False,
    on_entry: Callable[[Entry], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> ExportReport:
    """Export ``source`` (run dir or .keras) to every requested format and kind, verifying each.

    ``source=None``: the most recently finished run under ``./runs`` (``edge.discover``; said on
    screen unless ``quiet``).

    ``options`` are the fields of ``ExportSettings`` (max_drop, force, verify, int8_io,
    calibration_count, opset, per_channel, int8_auto, qat, qat_epochs, threads). ``on_start(n)``,
    ``on_progress(what, done, total)`` and ``on_entry(entry)`` let a caller show progress; the
    function itself prints nothing (``quiet`` is accepted for symmetry with train and bench).
    """
    known = {f.name for f in fields(ExportSettings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EdgeError(f"export() got unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    settings = ExportSettings(formats=formats, quantize=quantize, **options)  # type: ignore[arg-type]
    plan = make_plan(settings)
    started = time.perf_counter()
    if source is None:
        from edge.console import console
        from edge.discover import latest_run

        found = latest_run()
        if not quiet:
            console.print(found.describe(), highlight=False)
        source = found.path
    src = resolve_source(source)
    spec = src.spec
    out_dir = Path(out).expanduser() if out else _default_out(src)
    existing = [p for p in (out_dir / fmt.artifact_name(spec, kind) for fmt, kind in plan.pairs) if p.exists()]
    if existing and not settings.force:
        names = ", ".join(p.name for p in existing[:4])
        raise EdgeError(f"{names} already exist{'s' if len(existing) == 1 else ''} in {out_dir}; pass --force to overwrite.")
    _prepare_out_dir(out_dir)

    if settings.verify or data is not None or src.run is not None:
        samples, held_out_label = src.held_out(data)
    else:  # --no-verify on a bare .keras: nothing to run; int8 calibration will ask for --data
        samples, held_out_label = [], "none (--no-verify)"
    model = load_keras(src.model_path)
    check_model_matches_spec(model, spec, f"The spec of {src.label}")
    reference = KerasPredictor(model, spec)
    ref_start = time.perf_counter()
    images = load_images(samples, spec)
    labels = np.array([s.label for s in samples], int)
    if on_progress:
        on_progress("reference", 0, len(images))
    reference_probs = reference(images)
    reference_seconds = time.perf_counter() - ref_start
    reference_accuracy = float(np.mean(reference_probs.argmax(1) == labels)) if len(labels) else None

    report = ExportReport(
        source=src.label, out_dir=str(out_dir), model_name=spec.name, held_out=held_out_label,
        held_out_count=int(len(samples)), reference_accuracy=reference_accuracy, reference_runtime=reference.runtime,
        entries=[], skipped=plan.skipped, options=_report_options(settings), reference_seconds=reference_seconds,
        run_id=src.identity, planned=len(plan.pairs), **_run_location(src, out_dir),
    )
    report.write()  # from now on the report always describes what is in the folder
    ctx = _context(src, settings, model, out_dir, images, labels, reference_probs, samples)
    if on_start:
        on_start(len(plan.pairs))
    for fmt, kind in plan.pairs:
        ctx.on_progress = (lambda done, total, f=fmt, k=kind: on_progress(f"{f.name} {k}", done, total)) \
            if on_progress else None
        qat = remedies.get("qat")
        if kind == INT8 and settings.qat and qat.name in fmt.remedies:
            entry = remedies.first_pass(ctx, fmt, qat)
        else:
            entry = export_one(ctx, fmt, kind)
            if entry.status == FAILED and settings.int8_auto and kind == INT8 and fmt.remedies:
                entry = remedies.improve(ctx, fmt, entry)
        report.entries.append(entry)
        report.total_seconds = time.perf_counter() - started
        report.write()
        if on_entry:
            on_entry(entry)
    report.complete = True
    report.total_seconds = time.perf_counter() - started
    report.write()
    return report


def _default_out(src: Source) -> Path:
    return src.run.path / DEFAULT_EXPORT_DIR if src.run else src.model_path.parent / DEFAULT_EXPORT_DIR


def _prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder and prove it is writable before any expensive work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe_writable(out_dir)
    except OSError as exc:
        raise EdgeError(f"Cannot write to the output folder {out_dir} ({exc.strerror or exc}).") from exc


def _run_location(src: Source, out_dir: Path) -> dict[str, str]:
    """Where the source run is, relative to the export folder and absolute (bench finds it from either)."""
    if src.run is None:
        return {}
    absolute = src.run.path.resolve()
    return {"source_run_relative": os.path.relpath(absolute, out_dir.resolve()), "source_run_absolute": str(absolute)}


def _report_options(settings: ExportSettings) -> dict[str, Any]:
    keys = ("int8_io", "calibration_count", "opset", "per_channel", "int8_auto", "qat", "verify", "coreml_target")
    return {"max_drop_pts": settings.max_drop, **{k: getattr(settings, k) for k in keys}}


def _context(src: Source, settings: ExportSettings, model, out_dir: Path, images: np.ndarray, labels: np.ndarray,
             reference_probs: np.ndarray, samples) -> ExportContext:
    from edge.export.calibration import representative_images

    cache: dict[int, np.ndarray] = {}

    def calibration(count: int = settings.calibration_count) -> np.ndarray:
        if count not in cache:
            cache[count] = representative_images(src.calibration_samples(samples), src.spec.input_size, count,
                                                 src.spec.seed, src.spec.resize_filter)
        return cache[count]

    options = export_options(settings, source_run=src.identity)
    return ExportContext(model=model, spec=src.spec, out_dir=out_dir, images=images, labels=labels,
                         reference_probs=reference_probs, calibration=calibration, options=options,
                         max_drop=settings.max_drop, verify=settings.verify, threads=settings.threads, source=src,
                         qat_epochs=settings.qat_epochs)
