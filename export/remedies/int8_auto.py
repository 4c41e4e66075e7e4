"""The post-training remedies of ``--int8-auto``, tried in this order when int8 misses its budget.

1. more calibration images (4x, up to the whole training split);
2. per-channel weight scales (for a format whose export asked for per-tensor);
3. (quantization-aware training, ``qat``, for the formats that offer it: it keeps the file int8);
4. mixed precision: the ops with the largest int8 error (LiteRT's quantization debugger) in float,
   the last resort since it grows the file.
Which apply to a format is the format's ``remedies`` field; the order is ``edge.export.remedies.REGISTRY``.
"""

from __future__ import annotations

from dataclasses import replace as dc_replace

from edge.export.gate import ExportContext, export_one
from edge.export.remedies.base import INT8, Remedy
from edge.export.report import Entry
from edge.formats import Format

MORE_CALIBRATION_FACTOR = 4
FLOAT_LAYERS = 5


def _more_count(ctx: ExportContext) -> int:
    return ctx.options.calibration_count * MORE_CALIBRATION_FACTOR


def _more_available(ctx: ExportContext, fmt: Format) -> bool:
    """Only when the training split has more images than the first calibration used."""
    return len(ctx.calibration(_more_count(ctx))) > len(ctx.calibration(ctx.options.calibration_count))


def _more_calibration(ctx: ExportContext, fmt: Format) -> Entry:
    return export_one(ctx, fmt, INT8, calibration_count=_more_count(ctx), finalize=False)


def _per_channel(ctx: ExportContext, fmt: Format) -> Entry:
    return export_one(ctx, fmt, INT8, options=dc_replace(ctx.options, per_channel=True),
                      calibration_count=_more_count(ctx), finalize=False)


def _float_fallback(ctx: ExportContext, fmt: Format) -> Entry:
    from edge.export.formats.tflite import layer_errors

    count = _more_count(ctx)
    worst = [name for name, _ in layer_errors(ctx.model, ctx.calibration(count), ctx.options, top=FLOAT_LAYERS)]
    entry = export_one(ctx, fmt, INT8, options=dc_replace(ctx.options, float_layers=tuple(worst)),
                       calibration_count=count, finalize=False)
    entry.details["float_layers"] = worst
    return entry


BEFORE_QAT = [
    Remedy("more-calibration",
           lambda ctx: f"calibration x{MORE_CALIBRATION_FACTOR} ({len(ctx.calibration(_more_count(ctx)))} images)",
           _more_calibration, _more_available),
    Remedy("per-channel", lambda ctx: "per-channel weights", _per_channel,
           lambda ctx, fmt: not ctx.options.per_channel),
]
AFTER_QAT = [Remedy("float-fallback", lambda ctx: f"float fallback for the {FLOAT_LAYERS} worst ops", _float_fallback)]
