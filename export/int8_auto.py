"""Accuracy-aware int8 (``--int8-auto``): when full int8 misses its budget, try remedies in order.

1. more calibration images (4x, up to the whole training split);
2. per-channel weight scales (ONNX; TFLite is per-channel already);
3. mixed precision: the ops with the largest int8 error (LiteRT's quantization debugger) in float;
4. quantization-aware training (TFLite).

The first remedy that meets the budget is kept under the artifact's normal name; every attempt
is recorded in the report entry (``attempts``) with what it cost in size and accuracy.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace
from pathlib import Path

from edge.fileio import remove

MORE_CALIBRATION_FACTOR = 4
FLOAT_LAYERS = 5


def _attempt(remedy: str, entry) -> dict:
    return {
        "remedy": remedy,
        "status": entry.status,
        "accuracy": entry.accuracy,
        "drop_pts": entry.drop_pts,
        "agreement": entry.agreement,
        "size_bytes": entry.size_bytes,
        "export_seconds": round(entry.export_seconds, 1),
        "reason": entry.reason,
    }


def remedies(ctx, fmt):
    """(name, callable -> unfinalized Entry) for each remedy that applies to ``fmt``, in order."""
    from edge.export.pipeline import export_one

    opts = ctx.options
    count = opts.calibration_count * MORE_CALIBRATION_FACTOR
    available = len(ctx.calibration(count))  # capped by the training split
    if available > len(ctx.calibration(opts.calibration_count)):
        yield f"calibration x{MORE_CALIBRATION_FACTOR} ({available} images)", lambda: export_one(
            ctx, fmt, "int8", calibration_count=count, finalize=False)
    if fmt.name == "onnx" and not opts.per_channel:
        yield "per-channel weights", lambda: export_one(
            ctx, fmt, "int8", options=dc_replace(opts, per_channel=True), calibration_count=count, finalize=False)
    if fmt.name == "tflite":
        yield f"float fallback for the {FLOAT_LAYERS} worst ops", lambda: _mixed(ctx, fmt, count)
        yield "quantization-aware training", lambda: _qat(ctx, fmt)


def _mixed(ctx, fmt, count: int):
    from edge.export.pipeline import export_one
    from edge.export.tflite import layer_errors

    worst = layer_errors(ctx.model, ctx.calibration(count), ctx.options, top=FLOAT_LAYERS)
    entry = export_one(ctx, fmt, "int8", options=dc_replace(ctx.options, float_layers=tuple(n for n, _ in worst)),
                       calibration_count=count, finalize=False)
    entry.details["float_layers"] = [n for n, _ in worst]
    return entry


def _qat(ctx, fmt):
    import time

    from edge.export.pipeline import ERROR, Entry, export_one
    from edge.export.qat import training_set, train_qat

    start = time.perf_counter()
    try:
        images, labels = training_set(ctx)
        model = train_qat(ctx.model, images, labels, ctx.qat_epochs, ctx.spec.seed)
    except Exception as exc:  # noqa: BLE001
        return Entry(format=fmt.name, quantize="int8", status=ERROR, reason=f"QAT failed: {str(exc).splitlines()[0][:200]}")
    entry = export_one(ctx, fmt, "int8", model=model, finalize=False)
    entry.export_seconds += time.perf_counter() - start
    entry.details["method"] = "qat"
    return entry


def improve(ctx, fmt, failed):
    """Try the remedies after ``failed`` (a finalized, over-budget int8 entry); return the entry to report."""
    from edge.export.pipeline import PASSED, finish

    final = ctx.out_dir / fmt.artifact_name(ctx.spec, "int8")
    attempts = [_attempt("post-training int8", failed)]
    for name, run in remedies(ctx, fmt):
        try:
            entry = run()
        except Exception as exc:  # noqa: BLE001  (a remedy failing is one more line in the report)
            attempts.append({"remedy": name, "status": "error", "reason": str(exc).splitlines()[0][:200]})
            continue
        attempts.append(_attempt(name, entry))
        if entry.status == PASSED:
            entry.attempts = attempts
            entry.details["remedy"] = name
            entry = finish(ctx, fmt, entry, Path(entry.path), final)
            remove(Path(failed.path))  # the rejected plain-PTQ file is superseded
            return entry
        if entry.path:
            remove(Path(entry.path))
    failed.attempts = attempts
    failed.reason += f" (--int8-auto tried {len(attempts) - 1} remedies, none met the budget)"
    return failed
