"""Export benchmark: every format x quantization of a flowers-mini MobileNetV2, verified.

Trains (once, cached in benchmarks/out/runs/) a MobileNetV2 (ImageNet weights from the
offline copy in ../shared/keras_home) on ../shared/data/flowers-mini, then runs ``edge.export``
for TFLite (fp32, fp16, dynamic, int8), ONNX (fp32, fp16, int8) and Core ML (fp16, fp32, int8)
with ``--int8-auto``, and writes a table of size, held-out accuracy, drop vs Keras, agreement
and export time to ``benchmarks/results/export_flowers.md`` and ``.json``.

Run: ``python benchmarks/scripts/export_flowers.py [--image-size 224] [--formats tflite,onnx,coreml]``.
Skips with a message when the shared data or weights are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py, also when imported from elsewhere
from common import FLOWERS, RESULTS, WEIGHTS, WORK, require_shared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--formats", default="tflite,onnx,coreml")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--retrain", action="store_true", help="Train a new run even if one is cached.")
    parser.add_argument("--kinds", choices=("default", "all"), default="default",
                        help="default: what `edge export RUN --format ...` makes with no --quantize (the issue's target); "
                             "all: fp32, fp16, dynamic and int8 of every format, with --int8-auto.")
    args = parser.parse_args(argv)
    if not require_shared(FLOWERS, WEIGHTS):
        return 0

    from edge.bench.report import machine_info
    from edge.export import export
    from edge.train import train

    run_dir = WORK / "runs" / f"flowers_mobilenet_v2_{args.image_size}"
    if args.retrain or not (run_dir / "spec.json").is_file():
        start = time.perf_counter()
        # A 50/10/40 split keeps 200 held-out images, so one image is 0.5 accuracy points.
        train(FLOWERS, run_dir=run_dir, backbone="mobilenet_v2", weights=str(WEIGHTS), image_size=args.image_size,
              epochs=args.epochs, fine_tune_epochs=0, split=(0.5, 0.1, 0.4), seed=0, force=True)
        print(f"trained {run_dir} in {time.perf_counter() - start:.0f} s")

    out = WORK / "export_flowers"
    start = time.perf_counter()
    every = args.kinds == "all"
    report = export(run_dir, formats=[f for f in args.formats.split(",") if f], quantize=(
        ["fp32", "fp16", "dynamic", "int8"] if every else None), out=out, force=True, int8_auto=every, quiet=True)
    total = time.perf_counter() - start
    rows = [_row(e) for e in report.entries]
    machine = machine_info()
    result = {
        "machine": f"{machine['cpu']}, {machine['cores']} cpus, {machine['system']}",
        "model": f"mobilenet_v2 ImageNet, {args.image_size}px, flowers-mini",
        "kinds": args.kinds,
        "held_out_images": report.held_out_count,
        "keras_accuracy": report.reference_accuracy,
        "reference_seconds": round(report.reference_seconds, 1),
        "total_export_and_verify_seconds": round(total, 1),
        "cpu_flags": machine.get("cpu_flags", []),
        "load_average": os.getloadavg(),
        "artifacts": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "export_flowers.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "export_flowers.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0 if report.ok else 1


def _row(entry) -> dict:
    return {
        "format": entry.format,
        "quantize": entry.quantize,
        "status": entry.status,
        "size_mb": round(entry.size_bytes / 1e6, 2),
        "accuracy": entry.accuracy,
        "drop_pts": entry.drop_pts,
        "agreement": entry.agreement,
        "max_prob_diff": entry.max_prob_diff,
        "export_seconds": round(entry.export_seconds, 1),
        "verify_seconds": round(entry.verify_seconds, 1),
        "verified_by": entry.verified_by,
        "remedy": entry.details.get("remedy", ""),
        "reason": entry.reason,
    }


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _markdown(result: dict) -> str:
    from edge.artifacts import USABLE

    lines = [
        "# Export benchmark: flowers-mini, MobileNetV2",
        "",
        f"{result['model']}; {result['held_out_images']} held-out images; Keras accuracy "
        f"{_fmt(result['keras_accuracy'], '.2%')} (reference pass {result.get('reference_seconds', '-')} s); machine: "
        f"{result['machine']} ({', '.join(result.get('cpu_flags', []))}); kinds: {result.get('kinds', 'all')}; "
        f"the whole export with verification took **{result['total_export_and_verify_seconds']} s** "
        f"(load average at the end {', '.join(f'{v:.1f}' for v in result.get('load_average', []))}).",
        "",
        "| format | quantize | status | size (MB) | accuracy | drop (pts) | agreement | max prob diff | convert s | verify s | verified by |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["artifacts"]:
        status = r["status"] + (f" ({r['remedy']})" if r["remedy"] else "")
        lines.append(
            f"| {r['format']} | {r['quantize']} | {status} | {r['size_mb']:.2f} | {_fmt(r['accuracy'], '.2%')} | "
            f"{_fmt(r['drop_pts'], '+.2f')} | {_fmt(r['agreement'], '.2%')} | {_fmt(r['max_prob_diff'], '.1e')} | "
            f"{r['export_seconds']:.1f} | {r['verify_seconds']:.1f} | {r['verified_by']} |"
        )
    failed = [r for r in result["artifacts"] if r["status"] not in USABLE]
    for r in failed:
        lines.append(f"\n{r['format']} {r['quantize']}: {r['reason']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
