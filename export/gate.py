"""The gate: convert one artifact aside, verify it against the reference, then name it or reject it.

``ExportContext`` is everything one artifact's export needs (the model, the held-out images and
the reference's probabilities, the calibration source, the options); remedies reuse it.
An artifact is written under a hidden temporary name, run through its format's runtime on the
held-out images, compared with the reference (``edge.verify``), checked against the format's
budget, and only then renamed to ``<name>_<kind><suffix>``; over budget it goes to ``rejected/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge import verify as verification
from edge.artifacts import ERROR, FAILED, NOT_VERIFIED, PASSED, REJECTED_DIR
from edge.errors import one_line
from edge.export.report import Entry
from edge.export.source import Source
from edge.fileio import remove, replace
from edge.formats import Artifact, ExportOptions, Format
from edge.spec import ModelSpec


@dataclass
class ExportContext:
    """What every artifact of one export shares."""

    model: Any  # the tf_keras model
    spec: ModelSpec
    out_dir: Path
    images: np.ndarray  # held-out uint8 images
    labels: np.ndarray
    reference_probs: np.ndarray
    calibration: Callable[..., np.ndarray]  # calibration(count) -> uint8 images from the training split
    options: ExportOptions
    max_drop: float
    verify: bool
    threads: int | None
    source: Source
    qat_epochs: int = 2
    on_progress: Callable[[int, int], None] | None = None  # images done, total (long verifications)


def export_one(ctx: ExportContext, fmt: Format, kind: str, model: Any = None, options: ExportOptions | None = None,
               calibration_count: int | None = None, finalize: bool = True) -> Entry:
    """Convert, verify and (if within budget and ``finalize``) rename one artifact."""
    final = ctx.out_dir / fmt.artifact_name(ctx.spec, kind)
    temp = ctx.out_dir / f".{final.stem}.partial{fmt.suffix}"
    entry = Entry(format=fmt.name, quantize=kind, verified_by=fmt.verified_by,
                  budget=fmt.budget(kind, ctx.max_drop).to_dict())
    remove(temp)
    assert fmt.export is not None  # the plan only schedules export targets
    try:
        count = calibration_count or ctx.options.calibration_count
        calibration = ctx.calibration(count) if kind in fmt.needs_calibration else None
        artifact: Artifact = fmt.export(model if model is not None else ctx.model, ctx.spec, kind, temp, calibration,
                                        options or ctx.options)
    except Exception as exc:  # noqa: BLE001  (one converter failing must not stop the others)
        remove(temp)
        entry.reason = one_line(exc)
        return entry
    entry.size_bytes, entry.export_seconds, entry.details = artifact.size_bytes, artifact.convert_seconds, artifact.details
    if ctx.verify:
        verify(ctx, fmt, kind, temp, entry)
    else:
        entry.status, entry.verified_by = NOT_VERIFIED, ""
        entry.reason = "verification turned off (--no-verify)"
    if not finalize:
        entry.path = str(temp)
        return entry
    return finish(ctx, entry, temp, final)


def finish(ctx: ExportContext, entry: Entry, temp: Path, final: Path) -> Entry:
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


def verify(ctx: ExportContext, fmt: Format, kind: str, path: Path, entry: Entry) -> None:
    """Run the artifact on the held-out images and judge it against its format's budget."""
    start = time.perf_counter()
    try:
        predictor = fmt.load(path, threads=ctx.threads)
        probs = _run(predictor, ctx)
        result = verification.compare(ctx.reference_probs, probs, ctx.labels)
    except Exception as exc:  # noqa: BLE001
        entry.verify_seconds = time.perf_counter() - start
        if not fmt.always_runs_here:  # e.g. a Core ML program the reference executor cannot run
            entry.status, entry.verified_by = NOT_VERIFIED, ""
            entry.reason = f"not verified: {one_line(exc)}"
        else:
            entry.status, entry.reason = ERROR, f"{fmt.verified_by or fmt.display_name} could not run it: {one_line(exc)}"
        return
    entry.verify_seconds = time.perf_counter() - start
    entry.verify_images = int(len(ctx.images))
    entry.verified_by = getattr(predictor, "runtime", fmt.verified_by) or fmt.verified_by
    for key, value in result.to_dict().items():
        if key != "count":
            setattr(entry, key, value)
    reasons = fmt.budget(kind, ctx.max_drop).failures(result.agreement, result.max_prob_diff, result.drop_pts)
    entry.status = FAILED if reasons else PASSED
    entry.reason = "; ".join(reasons)


PROGRESS_CHUNK = 16  # images per step of the per-image progress inside one verification


def _run(predictor, ctx: ExportContext) -> np.ndarray:
    """The predictor's probabilities for the held-out images, reporting progress chunk by chunk."""
    if ctx.on_progress is None or len(ctx.images) <= PROGRESS_CHUNK:
        return np.asarray(predictor(ctx.images))
    out = []
    for start in range(0, len(ctx.images), PROGRESS_CHUNK):
        out.append(np.asarray(predictor(ctx.images[start : start + PROGRESS_CHUNK])))
        ctx.on_progress(min(start + PROGRESS_CHUNK, len(ctx.images)), len(ctx.images))
    return np.concatenate(out)
