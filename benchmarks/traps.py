"""Known performance traps, detected in the artifacts and in the measured numbers.

What a format can tell from the artifact itself (dynamic-range TFLite, uint8 I/O, ONNX U8U8 or
dynamic quantization, LiteRT without XNNPACK) is its record's ``inspect``; this module adds the
one check that needs timing: an int8 artifact measured slower than its fp32 sibling.
"""

from __future__ import annotations


def _inspect(ref, predictor) -> dict:
    inspect = ref.fmt.inspect
    if inspect is None:
        return {}
    try:
        return inspect(ref.path, predictor)
    except Exception:  # noqa: BLE001  (a trap check must never fail a bench)
        return {}


def kind(ref, predictor) -> str:
    """The quantize kind read from the artifact itself ("" when its format cannot tell)."""
    return str(_inspect(ref, predictor).get("kind", ""))


def artifact_warnings(ref, predictor) -> list[str]:
    """Warnings read from the artifact itself (no timing needed)."""
    return list(_inspect(ref, predictor).get("warnings", []))


def measured_warnings(rows) -> list[str]:
    """An int8 artifact slower than the fp32 one of the same format at the same thread count."""
    found = []
    fp32 = {(r.format, r.threads, r.batch): r for r in rows if r.quantize == "fp32" and r.p50_ms is not None}
    for row in rows:
        base = fp32.get((row.format, row.threads, row.batch))
        if row.quantize in ("int8", "dynamic") and base and row.p50_ms is not None and row.p50_ms > base.p50_ms:
            threads = f"{row.threads} thread{'' if row.threads == 1 else 's'}"
            found.append(f"{row.name} ({threads}) is slower than {base.name}: p50 {row.p50_ms:.2f} ms vs "
                         f"{base.p50_ms:.2f} ms on this CPU.")
    return found
