"""What the measurement scripts in benchmarks/scripts/ share: the repository's paths and the skip check.

The scripts run as ``python benchmarks/scripts/NAME.py`` (from any directory), so this folder is
first on ``sys.path`` and they import this module as ``common``. Nothing here is installed.

The offline data and weights live in ``shared/`` next to the repository (``../shared``): the
flowers-mini photos and the ImageNet MobileNetV2 weights. Scripts that need them call
``require_shared()`` and exit 0 with a message when they are absent.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root (this file is benchmarks/scripts/common.py)
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"  # the result tables (committed)
WORK = BENCHMARKS / "out"  # trained runs and exported artifacts (git-ignored)

SHARED = ROOT.parent / "shared"  # offline data and weights, outside the repository
FLOWERS = SHARED / "data" / "flowers-mini"
WEIGHTS = SHARED / "keras_home" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def require_shared(*paths: Path) -> bool:
    """True when every path exists (default: ``FLOWERS`` and ``WEIGHTS``); else print why the script skips.

    The caller returns exit status 0 on False: a missing ``../shared`` is a skip, not a failure.
    """
    paths = paths or (FLOWERS, WEIGHTS)
    if all(Path(p).exists() for p in paths):
        return True
    print(f"skipped: needs {' and '.join(str(p) for p in paths)} (the offline data and weights in {SHARED}; "
          f"see benchmarks/README.md)")
    return False


def int8_gate_passed(accuracy: float, reference_accuracy: float, images: int) -> bool:
    """The int8 gate's verdict (the default budget), recounted from an artifact's stored accuracies.

    Results written before 2026-11-29 hold the gate's status of their day, which failed a drop of
    exactly one photo in 100 at 80 of the 100 possible accuracies (the float difference of the two
    accuracies; ``edge.verify.drop_pts``). The tables count passes with this instead.
    """
    from edge.formats import COMPRESSED_BUDGET
    from edge.verify import drop_pts

    lost = drop_pts(round(reference_accuracy * images), round(accuracy * images), images)
    return not COMPRESSED_BUDGET.failures(1.0, 0.0, lost)
