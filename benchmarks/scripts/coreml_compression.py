"""Core ML weight compression on real photos: size against accuracy drop, per deployment target.

On ../shared/data/flowers-mini with the ImageNet MobileNetV2 at 224 px (the head trained by
``coreml_executor.py``'s run in benchmarks/out/runs/, trained here when absent), ``edge export``
writes every compressed Core ML kind for the iOS 16 target (one palette per tensor) and the iOS 18
target (one palette per 16 output channels, block-wise int4), and its gate verifies each on the
run's held-out photos. The table gives size, accuracy, drop and agreement, and which pass the
default 1-point budget; the smallest that passes is the README's recommendation.

Run: ``python benchmarks/scripts/coreml_compression.py``. Results:
``benchmarks/results/coreml_compression.md`` and ``.json`` (with the CPU's flags).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py
from common import FLOWERS, RESULTS, WEIGHTS, WORK, require_shared

RUN = WORK / "runs" / "coreml_flowers_mobilenet_v2_224"  # shared with coreml_executor.py
PLAN = {"ios16": ("fp16", "int8", "palettize8", "palettize6", "palettize4"),
        "ios18": ("int8", "palettize8", "palettize6", "palettize4", "int4")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    if not require_shared():
        return 0
    from edge import export
    from edge.bench.report import machine_info
    from edge.rundir import is_finished
    from edge.train import train

    if not is_finished(RUN):
        train(FLOWERS, run_dir=RUN, backbone="mobilenet_v2", weights=str(WEIGHTS), image_size=224,
              epochs=args.epochs, fine_tune_epochs=0, split=(0.5, 0.1, 0.4), seed=0, force=True, quiet=True)
    rows, started = [], time.perf_counter()
    for target, kinds in PLAN.items():
        out = WORK / "coreml_compression" / target
        report = export(RUN, formats=["coreml"], quantize=list(kinds), out=out, coreml_target=target, force=True,
                        quiet=True)
        for e in report.entries:
            rows.append({"target": target, "kind": e.quantize, "status": e.status, "size_mb": round(e.size_bytes / 1e6, 2),
                         "accuracy": e.accuracy, "reference_accuracy": e.reference_accuracy, "drop_pts": e.drop_pts,
                         "agreement": e.agreement, "verify_s": round(e.verify_seconds, 1),
                         "compression": e.details.get("compression", e.details.get("compute_precision", "")),
                         "reason": e.reason})
        images = report.held_out_count
    passing = [r for r in rows if r["status"] == "passed" and r["kind"] != "fp16"]
    best = min(passing, key=lambda r: r["size_mb"]) if passing else None
    result = {"model": "mobilenet_v2 1.0 224 (ImageNet weights, head trained on flowers-mini)", "images": images,
              "machine": machine_info(), "rows": rows, "recommended": best,
              "seconds": round(time.perf_counter() - started, 1), "load_average": os.getloadavg()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coreml_compression.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "coreml_compression.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# Core ML weight compression: size vs accuracy drop (flowers-mini, 224 px)", "",
             f"{result['model']}; verified by edge export's gate on {result['images']} held-out photos; budget: "
             "at most 1.0 point of accuracy drop (fp16: 99% agreement).",
             f"Machine: {m.get('cpu', '?')}, flags {', '.join(m.get('cpu_flags', []))}.", "",
             "| target | kind | compression | size MB | accuracy | drop pts | agreement | gate |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        drop = "-" if r["drop_pts"] is None else f"{r['drop_pts']:+.1f}"
        lines.append(f"| {r['target']} | {r['kind']} | {r['compression']} | {r['size_mb']:.2f} | {_pct(r['accuracy'])} | "
                     f"{drop} | {_pct(r['agreement'])} | {r['status']} |")
    best = result["recommended"]
    lines += ["", f"Smallest that passes: **{best['kind']} with --coreml-target {best['target']}** ({best['size_mb']:.2f} MB)."
              if best else "", "One photo is 0.5 point here (200 held-out photos)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
