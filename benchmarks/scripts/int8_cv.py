"""Ways of making the int8 TFLite file, compared over the 5 cross-validation folds of one recipe.

Takes the fold runs ``train_cv.py`` left (``benchmarks/out/cv/RECIPE/foldK``) and exports each one's
int8 TFLite file once per method, verified by edge's gate on the fold's 100 test photos:

* ``ptq``: ``edge export`` as by default (post-training, 200 calibration photos);
* ``qat``: ``edge export --qat`` (quantization-aware training on the fold's training split);
* ``auto``: ``edge export --int8-auto`` (post-training, then the remedies in order until one passes);
* ``ptq-calibrate-all``: post-training, calibrated on the whole training split (``--calibration-count``);
* ``onnx-ptq``: the ONNX int8 file instead (onnxruntime static QDQ, as ``edge export`` makes it).

Per method: int8 top-1 (mean +- std over folds), the drop from the float model, top-1 agreement,
how many answers changed over the 500 photos and how many of those the float model was unsure of
(``edge.verify``), how many folds pass the gate, file size and seconds per fold.

    python benchmarks/scripts/int8_cv.py [--recipe defaults_now] [--methods ptq,qat]

Writes benchmarks/results/int8_cv.{json,md}; a (recipe, method, fold) already there is kept unless
--redo. Skips (exit 0) without ../shared or without the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import RESULTS, WORK, int8_gate_passed, require_shared
from train_cv import _mean_std

METHODS = {"ptq": {}, "qat": {"qat": True}, "auto": {"int8_auto": True},
           "ptq-calibrate-all": {"calibration_count": 100_000}, "onnx-ptq": {"formats": "onnx"}}
OUT_JSON = RESULTS / "int8_cv.json"
OUT_MD = RESULTS / "int8_cv.md"


def run(recipe: str, method: str, fold_dir) -> dict:
    from edge import export

    start = time.perf_counter()
    report = export(fold_dir, quantize="int8", out=WORK / "int8_cv" / recipe / method / fold_dir.name,
                    quiet=True, force=True, **{"formats": "tflite", **METHODS[method]})
    (entry,) = report.entries
    return {"recipe": recipe, "method": method, "fold": fold_dir.name, "status": entry.status,
            "accuracy": entry.accuracy, "float_accuracy": entry.reference_accuracy, "agreement": entry.agreement,
            "changed": entry.changed, "changed_unsure": entry.changed_unsure, "images": entry.verify_images,
            "size_mb": round(entry.size_bytes / 1e6, 2), "seconds": round(time.perf_counter() - start, 1),
            "remedy": entry.details.get("remedy", "")}


def table(rows: list[dict]) -> list[str]:
    md = ["| recipe | method | folds | int8 top-1 | float top-1 | agreement | answers changed (float unsure) | "
          "gate passed | MB | s per fold |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in dict.fromkeys((r["recipe"], r["method"]) for r in rows):
        rs = [r for r in rows if (r["recipe"], r["method"]) == key]
        changed = sum(r["changed"] or 0 for r in rs)
        unsure = sum(r["changed_unsure"] or 0 for r in rs)
        md.append(f"| {key[0]} | {key[1]} | {len(rs)} | {_mean_std([r['accuracy'] for r in rs])} | "
                  f"{_mean_std([r['float_accuracy'] for r in rs])} | {_mean_std([r['agreement'] for r in rs])} | "
                  f"{changed} of {sum(r['images'] for r in rs)} ({unsure}) | "
                  f"{sum(int8_gate_passed(r['accuracy'], r['float_accuracy'], r['images']) for r in rs)}/{len(rs)} | {statistics.fmean(r['size_mb'] for r in rs):.2f} | "
                  f"{statistics.fmean(r['seconds'] for r in rs):.0f} |")
    return md


def write_md(rows: list[dict]) -> None:
    OUT_MD.write_text("\n".join([
        "# int8 TFLite by method, over the 5 CV folds of a recipe (100 test photos a fold)", "",
        "Each fold's run from `train_cv.py`, exported with `edge export --formats tflite --quantize int8` "
        "and the method's option (`onnx-ptq`: `--formats onnx`); the gate verifies it on the fold's test photos (drop <= 1 point). "
        "\"answers changed (float unsure)\": photos whose int8 top-1 differs from the float model's, over all "
        "folds, and of them how many the float model was unsure of (margin < edge.verify.UNSURE_MARGIN). "
        "\"gate passed\" is recounted from the stored accuracies with the gate's drop as of 2026-11-29 (a drop "
        "of exactly one photo passes; `common.int8_gate_passed`).", "",
        *table(rows)]) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="defaults_now", help="a recipe train_cv.py ran (its runs are kept)")
    parser.add_argument("--methods", default="ptq,qat", help=f"comma list of {', '.join(METHODS)}")
    parser.add_argument("--redo", action="store_true", help="rerun what is already in the results")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; one of {', '.join(METHODS)}")
    folds = sorted((WORK / "cv" / args.recipe).glob("fold*"))
    if not require_shared() or not require_shared(*(folds[:1] or [WORK / "cv" / args.recipe / "fold0"])):
        return 0
    rows = json.loads(OUT_JSON.read_text())["rows"] if OUT_JSON.is_file() else []
    for method in methods:
        for fold_dir in folds:
            key = (args.recipe, method, fold_dir.name)
            if not args.redo and any((r["recipe"], r["method"], r["fold"]) == key for r in rows):
                continue
            row = run(args.recipe, method, fold_dir)
            print(json.dumps(row), flush=True)
            rows = [r for r in rows if (r["recipe"], r["method"], r["fold"]) != key] + [row]
            RESULTS.mkdir(parents=True, exist_ok=True)
            OUT_JSON.write_text(json.dumps({"rows": rows}, indent=1))
            write_md(rows)
    print(OUT_MD.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
