"""Remedies: registered ways to rescue an int8 artifact that misses its budget.

Each ``Remedy`` has a name (what a format lists in ``Format.remedies``), a sentence for reports,
and ``attempt(ctx, fmt) -> Entry`` returning an unfinalized entry. ``--int8-auto`` runs the ones
that apply, in registry order, and keeps the first that passes (``improve``); ``--qat`` runs the
QAT remedy directly (``first_pass``). The gate knows nothing of them.
"""

from __future__ import annotations

from pathlib import Path

from edge.artifacts import ERROR, PASSED
from edge.errors import one_line
from edge.export.gate import ExportContext, finish
from edge.export.remedies import int8_auto, qat
from edge.export.remedies.base import INT8, Remedy, attempt_record
from edge.export.report import Entry
from edge.fileio import remove
from edge.formats import Format

# The order --int8-auto tries them in: QAT before the float fallback, because QAT keeps the file int8 (its
# size and speed) and on the 5 flowers-mini CV folds passed the gate 5 times of 5 at +0.6 points over float
# (benchmarks/results/int8_cv.md), while the float fallback doubles the file (2.7 -> 5.6 MB).
REGISTRY: list[Remedy] = [*int8_auto.BEFORE_QAT, qat.REMEDY, *int8_auto.AFTER_QAT]


def for_format(ctx: ExportContext, fmt: Format) -> list[Remedy]:
    """The remedies ``fmt`` supports that apply to this export, in order."""
    return [r for r in REGISTRY if r.name in fmt.remedies and r.applies(ctx, fmt)]


def get(name: str) -> Remedy:
    return next(r for r in REGISTRY if r.name == name)


def first_pass(ctx: ExportContext, fmt: Format, remedy: Remedy) -> Entry:
    """Run one remedy as the way to make the int8 artifact (``--qat``) and finalize its result."""
    try:
        entry = remedy.attempt(ctx, fmt)
    except Exception as exc:  # noqa: BLE001  (a remedy failing is the entry's reason)
        return Entry(format=fmt.name, quantize=INT8, status=ERROR, verified_by=fmt.verified_by,
                     reason=f"{remedy.describe(ctx)} failed: {one_line(exc)}")
    if not entry.path:
        return entry
    return finish(ctx, entry, Path(entry.path), ctx.out_dir / fmt.artifact_name(ctx.spec, INT8))


def improve(ctx: ExportContext, fmt: Format, failed: Entry) -> Entry:
    """Try the remedies after ``failed`` (a finalized, over-budget int8 entry); return the entry to report."""
    final = ctx.out_dir / fmt.artifact_name(ctx.spec, INT8)
    attempts = [attempt_record("post-training int8", failed)]
    for remedy in for_format(ctx, fmt):
        name = remedy.describe(ctx)
        try:
            entry = remedy.attempt(ctx, fmt)
        except Exception as exc:  # noqa: BLE001  (a remedy failing is one more line in the report)
            attempts.append({"remedy": name, "status": ERROR, "reason": one_line(exc)})
            continue
        attempts.append(attempt_record(name, entry))
        if entry.status == PASSED:
            entry.attempts = attempts
            entry.details["remedy"] = name
            entry = finish(ctx, entry, Path(entry.path), final)
            remove(Path(failed.path))  # the rejected plain-PTQ file is superseded
            return entry
        if entry.path:
            remove(Path(entry.path))
    failed.attempts = attempts
    failed.reason += f" (--int8-auto tried {len(attempts) - 1} remedies, none met the budget)"
    return failed
