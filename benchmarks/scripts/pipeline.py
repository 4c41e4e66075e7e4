"""The whole pipeline on one dataset: train -> export every format -> edge bench, in one run.

Default data: ``../shared/data/flowers-mini`` with the offline ImageNet MobileNetV2 weights
(``../shared/keras_home``) at 224 px; without them, a synthetic set trained from scratch. Writes
``benchmarks/RESULTS.md`` (table, chart, target ratios, machine, package versions) and keeps the
raw ``bench.json``/``bench.md``/``bench.png`` in ``benchmarks/results/pipeline/``.

Measured in the same process, one after the other: every artifact at each thread count, the
sustained fp32 matmul FLOP/s (compute floor), and the harness-overhead check (the TFLite fp32
model timed by ``edge.bench`` and by a bare ``interpreter.invoke()`` loop, interleaved).

Run: ``python benchmarks/scripts/pipeline.py [--epochs 10 --fine-tune-epochs 5] [--run RUN_DIR] [--threads 1,2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py, also when imported from elsewhere
from common import BENCHMARKS, FLOWERS, RESULTS, WEIGHTS

RESULTS_MD = BENCHMARKS / "RESULTS.md"
WORK = RESULTS / "pipeline"  # the raw bench.json/.md/.png and ratios.json; run/ and export*/ are git-ignored

TARGETS = {  # from the bench issue
    "tflite_int8_vs_fp32": 0.5, "onnx_int8_vs_fp32": 0.5, "fp32_vs_floor": 1.5, "int8_drop_pts": 0.5,
    "harness_overhead": 0.03,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="Class-folder dataset (default: flowers-mini, else synthetic).")
    parser.add_argument("--weights", default=None, help="Backbone weights (default: the shared ImageNet file when present).")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--split", default="0.5,0.1,0.4",
                        help="train,val,test fractions (default keeps 40%% held out: 200 flowers images, 0.5 pt each).")
    parser.add_argument("--run", type=Path, default=None, help="Reuse this finished run directory (skip training).")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--time-budget", type=float, default=6.0, help="Seconds of timed runs per artifact and thread count.")
    parser.add_argument("--no-coreml", action="store_true", help="Skip the Core ML export (slow reference executor).")
    parser.add_argument("--bench-coreml", action="store_true",
                        help="Also bench the Core ML fp16 package (accuracy via the slow reference executor; latency n/a).")
    parser.add_argument("--out", type=Path, default=WORK)
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse the run and the exports already in --out (from an earlier invocation) when present.")
    parser.add_argument("--stop-after", choices=("train", "export"), default=None,
                        help="Stop after this stage (to train/export early and time later with --reuse).")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from edge.bench import bench, report

    started = time.perf_counter()
    timings: dict[str, float] = {}
    load_before = os.getloadavg()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    run_dir, dataset = _train(args, out, timings)
    if args.stop_after == "train":
        return 0
    artifacts, failed = _export(args, run_dir, out, timings)
    if args.stop_after == "export":
        return 0

    t0 = time.perf_counter()
    result = bench([run_dir / "model.keras", *artifacts], run=run_dir, threads=args.threads, runs=args.runs,
                   time_budget=args.time_budget, floor=True)
    timings["bench_s"] = time.perf_counter() - t0
    written = report.write_all(result, out)
    report.print_summary(result, _console())

    t0 = time.perf_counter()
    fp32 = next(p for p in artifacts if p.name.endswith("_fp32.tflite"))
    overhead = harness_overhead(fp32, run_dir, threads=max(result.options["threads"]), budget_s=2.0)
    timings["overhead_check_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    ratios = target_ratios(result, overhead)
    (out / "ratios.json").write_text(json.dumps({"ratios": ratios, "overhead": overhead, "timings": timings}, indent=2))
    RESULTS_MD.write_text(results_markdown(result, ratios, overhead, dataset, args, timings, failed, written,
                                           load_before, os.getloadavg()), encoding="utf-8")
    print(f"wrote {RESULTS_MD}")
    for line in ratio_lines(ratios):
        print(line)
    return 0


def _export(args, run_dir: Path, out: Path, timings: dict) -> tuple[list[Path], list[str]]:
    """Every format x kind into out/export, plus the int8 TFLite with int8 I/O in out/export_int8io."""
    from edge import formats
    from edge.artifacts import REPORT_FILE, USABLE
    from edge.export import export

    export_dir, io_dir = out / "export", out / "export_int8io"
    report_file = export_dir / REPORT_FILE
    int8io = io_dir / f"{json.loads((run_dir / 'spec.json').read_text())['name']}_int8_int8io.tflite"
    if args.reuse and report_file.is_file() and int8io.exists():
        entries = json.loads(report_file.read_text())["entries"]
        timings.update(_stage_timings(out, "export_s"))
    else:
        t0 = time.perf_counter()
        wanted = ["tflite", "onnx"] + ([] if args.no_coreml else ["coreml"])
        export(run_dir, formats=wanted, quantize=["fp32", "fp16", "dynamic", "int8"], out=export_dir, force=True)
        # The same int8 TFLite with int8 input/output, to show the uint8-vs-int8 I/O cost side by side.
        rep_io = export(run_dir, formats=["tflite"], quantize=["int8"], out=io_dir, force=True, int8_io="int8")
        timings["export_s"] = time.perf_counter() - t0
        _save_stage_timing(out, "export_s", timings["export_s"])
        for entry in rep_io.entries:  # benched even when export's gate rejected it (the bench says why)
            if entry.path and Path(entry.path).exists():
                shutil.move(entry.path, int8io)
        _save_stage_timing(out, "int8io_status", {"status": rep_io.entries[0].status, "reason": rep_io.entries[0].reason})
        entries = json.loads(report_file.read_text())["entries"]
    # Passed artifacts and the ones export's gate moved to rejected/ (over budget) are all benched.
    # Core ML off macOS runs in the NumPy reference executor: accuracy only, about 3 minutes per package
    # at 224 px here, so it is benched only with --bench-coreml (default kind fp16); export's gate has checked it.
    artifacts = [Path(e["path"]) for e in entries if e["path"] and Path(e["path"]).exists()
                 and (formats.get(e["format"]).always_runs_here or (args.bench_coreml and e["quantize"] == "fp16"))]
    artifacts += [int8io] if int8io.exists() else []
    failed = [f"{e['format']} {e['quantize']}: {e['status']} ({e['reason']})" for e in entries
              if e["status"] not in USABLE]
    io_status = json.loads((out / STAGE_TIMINGS).read_text()).get("int8io_status") if (out / STAGE_TIMINGS).is_file() else None
    if io_status and io_status["status"] not in USABLE:
        failed.append(f"tflite int8 (int8 I/O): {io_status['status']} ({io_status['reason']})")
    return artifacts, failed


STAGE_TIMINGS = "stage_timings.json"


def _save_stage_timing(out: Path, key: str, seconds) -> None:
    path = out / STAGE_TIMINGS
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = seconds
    path.write_text(json.dumps(data, indent=1))


def _stage_timings(out: Path, key: str) -> dict:
    """A reused stage's time from the invocation that ran it (marked as such)."""
    path = out / STAGE_TIMINGS
    data = json.loads(path.read_text()) if path.is_file() else {}
    return {f"{key[:-2]} (earlier invocation)_s": data[key]} if key in data else {}


def _console():
    from edge.console import console

    return console


def _train(args, out: Path, timings: dict) -> tuple[Path, str]:
    if args.run is not None:
        return args.run, f"existing run {args.run}"
    from edge.train import train

    data = args.data
    weights = args.weights
    if data is None and FLOWERS.is_dir():
        data = FLOWERS
    if weights is None:
        weights = str(WEIGHTS) if WEIGHTS.is_file() and data == FLOWERS else "none"
    if data is None:
        from edge.data.synth import synth

        data = out / "synthetic"
        synth(data, classes=5, per_class=80, image_size=128, seed=0)
    run_dir = out / "run"
    name = "ImageNet" if weights != "none" else "from scratch"
    described = f"{data} (MobileNetV2 1.0, {args.image_size} px, weights {name}, {args.epochs}+{args.fine_tune_epochs} epochs, split {args.split})"
    if args.reuse and (run_dir / "spec.json").is_file():
        timings.update(_stage_timings(out, "train_s"))
        return run_dir, described
    t0 = time.perf_counter()
    train(data, run_dir=run_dir, backbone="mobilenet_v2", weights=weights, image_size=args.image_size,
          epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, split=tuple(float(v) for v in args.split.split(",")),
          seed=0, force=True)
    timings["train_s"] = time.perf_counter() - t0
    _save_stage_timing(out, "train_s", timings["train_s"])
    return run_dir, described


def harness_overhead(model: Path, run_dir: Path, threads: int, budget_s: float, rounds: int = 6) -> dict:
    """p50 of the same .tflite timed by edge.bench and by a bare invoke() loop, interleaved.

    Order: bare, bench, bare, bench, ... bare; each side's p50 is the median over its rounds.
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edge.bench import bench, latency

    def bare() -> float:
        interpreter = Interpreter(model_path=str(model), num_threads=threads)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        interpreter.set_tensor(inp["index"], np.random.default_rng(0).uniform(0, 255, inp["shape"]).astype(inp["dtype"]))
        for _ in range(10):
            interpreter.invoke()
        times, deadline = [], time.perf_counter() + budget_s
        while len(times) < 300 and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            interpreter.invoke()
            times.append(time.perf_counter() - t0)
        return latency.percentile(times, 50) * 1000

    def edge_bench() -> float:
        res = bench([model], run=run_dir, threads=threads, runs=300, time_budget=budget_s, reference=None)
        return res.rows[0].p50_ms

    bare_ms, bench_ms = [bare()], []
    for _ in range(rounds - 1):
        bench_ms.append(edge_bench())
        bare_ms.append(bare())
    bare_p50, bench_p50 = float(np.median(bare_ms)), float(np.median(bench_ms))
    return {"model": model.name, "threads": threads, "bare_p50_ms": bare_p50, "bench_p50_ms": bench_p50,
            "overhead": bench_p50 / bare_p50 - 1.0, "bare_rounds_ms": bare_ms, "bench_rounds_ms": bench_ms}


def _row(result, suffix: str, threads: int):
    return next((r for r in result.rows if r.name.endswith(suffix) and r.threads == threads), None)


def target_ratios(result, overhead: dict) -> dict:
    ratios: dict = {}
    for t in result.options["threads"]:
        tfp, tq, tq8 = _row(result, "_fp32.tflite", t), _row(result, "_int8.tflite", t), _row(result, "_int8_int8io.tflite", t)
        ofp, oq = _row(result, "_fp32.onnx", t), _row(result, "_int8.onnx", t)
        entry = {}
        if tfp and tq and tfp.p50_ms and tq.p50_ms:
            entry["tflite_int8_vs_fp32"] = tq.p50_ms / tfp.p50_ms
        if tfp and tq8 and tfp.p50_ms and tq8.p50_ms:
            entry["tflite_int8io_vs_fp32"] = tq8.p50_ms / tfp.p50_ms
        if ofp and oq and ofp.p50_ms and oq.p50_ms:
            entry["onnx_int8_vs_fp32"] = oq.p50_ms / ofp.p50_ms
        if tfp and tfp.x_floor:
            entry["tflite_fp32_vs_floor"] = tfp.x_floor
        if ofp and ofp.x_floor:
            entry["onnx_fp32_vs_floor"] = ofp.x_floor
        ratios[f"{t}_threads"] = entry
    first = result.options["threads"][0]
    for name, suffix in (("tflite_int8_drop_pts", "_int8.tflite"), ("tflite_int8io_drop_pts", "_int8_int8io.tflite"),
                         ("onnx_int8_drop_pts", "_int8.onnx")):
        row = _row(result, suffix, first)
        if row and row.drop_pts is not None:
            ratios[name] = row.drop_pts
    ratios["harness_overhead"] = overhead["overhead"]
    return ratios


def _verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "misses"


def ratio_lines(ratios: dict) -> list[str]:
    lines = []
    for key, value in ratios.items():
        if isinstance(value, dict):
            for name, v in value.items():
                target = TARGETS.get(name.replace("tflite_int8io", "tflite_int8").replace("tflite_fp32_vs_floor", "fp32_vs_floor").replace("onnx_fp32_vs_floor", "fp32_vs_floor"))
                lines.append(f"| {name} ({key.split('_')[0]} thread(s)) | {v:.2f}x | <= {target}x | {_verdict(v, target)} |")
        else:
            if key == "harness_overhead":
                lines.append(f"| harness overhead (edge bench p50 / bare invoke p50 - 1) | {value * 100:+.1f}% | <= 3% | "
                             f"{_verdict(value, TARGETS['harness_overhead'])} |")
            else:
                lines.append(f"| {key} | {value:+.2f} pts | <= 0.5 pts | {_verdict(value, TARGETS['int8_drop_pts'])} |")
    return lines


def results_markdown(result, ratios, overhead, dataset, args, timings, failed, written, load_before, load_after) -> str:
    from edge.bench import report

    m = result.machine
    chart = Path(os.path.relpath(written["chart"], RESULTS_MD.parent)) if "chart" in written else None
    floors = ", ".join(f"{t} thread(s): {v['flops_per_s'] / 1e9:.0f} GFLOP/s (best rep {v['best_flops_per_s'] / 1e9:.0f})"
                       for t, v in result.matmul.items())
    flops = next((r.flops for r in result.rows if r.flops), None)
    lines = [
        "# edge benchmarks: train -> export -> bench",
        "",
        f"Generated by `python benchmarks/scripts/pipeline.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"everything below comes from that one run.",
        "",
        "## Setup",
        f"- Data: {dataset}; bench on {result.count} held-out images ({result.data}).",
        f"- Machine: {m['cpu']}, {m['cores']} cores, vector extensions: {', '.join(m['cpu_flags']) or 'unknown'}; "
        f"{m['system']}, Python {m['python']}.",
        f"- Load average (1/5/15 min) before: {', '.join(f'{v:.1f}' for v in load_before)}; after: "
        f"{', '.join(f'{v:.1f}' for v in load_after)} (other jobs share this machine; numbers move with it).",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        f"- Timing: batch {result.options['batch']}, {result.options['warmup']} warm-up runs, then up to "
        f"{result.options['runs']} timed runs or {result.options['time_budget_s']:g} s per artifact and thread count.",
        f"- Compute floor: sustained fp32 `tf.linalg.matmul` (1024x1024, median of back-to-back runs): {floors}. "
        + (f"Model: {flops / 1e9:.3g} GFLOP per image (2 x conv/depthwise/dense MACs)." if flops else ""),
        "- Wall time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items()) + ".",
        "",
        "## Targets (ratios from this run)",
        "",
        "| ratio | measured | target | |",
        "|---|---|---|---|",
        *ratio_lines(ratios),
        "",
        f"Harness check: {overhead['model']} on {overhead['threads']} thread(s); bare `interpreter.invoke()` p50 per "
        f"round {', '.join(f'{v:.3f}' for v in overhead['bare_rounds_ms'])} ms; edge bench p50 per round "
        f"{', '.join(f'{v:.3f}' for v in overhead['bench_rounds_ms'])} ms (interleaved; medians compared).",
        "",
        "## All artifacts",
        "",
        report.markdown(result).rstrip(),
        "",
    ]
    if chart:
        lines += [f"![accuracy vs p50 latency]({chart.as_posix()})", ""]
    if failed:
        lines += ["Export's verification gate (budgets of the export issue) did not pass these; the ones it wrote "
                  "(moved to `rejected/`) are benched above all the same:", *[f"- {f}" for f in failed], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
