"""In-browser latency: MobileNetV2 224 (fp32, int8) in headless Chromium vs onnxruntime native, one run.

The web demo's engine is onnxruntime-web (WebAssembly, SIMD; threads when cross-origin isolated)
on edge's ONNX export. This script measures, on this machine and in one run:

* onnxruntime-web in Chromium, through edge's own browser runtime (``edge.runtimes.web``: the web
  demo page served by ``edge.serve``, timed with the page's clock), 1 and 2 threads;
* onnxruntime native (``edge.runtimes.ort``) on the same files, 1 and 2 threads;
* for the runtime choice: LiteRT.js (``@litertjs/core``, a devDependency of web_demo/) on the
  TFLite export. edge's TFLite files have a dynamic batch dimension, which LiteRT.js cannot resize
  (it refuses the input), so it runs a batch-1 conversion made with edge's own converter settings;
  native LiteRT on edge's file for reference.

The model is edge's classifier (``edge.train.model.build_model``): MobileNetV2 alpha 1.0 at 224 px
with the ImageNet weights from ../shared/keras_home when present, else random weights (latency does
not depend on them), exported by edge's own format records (int8 calibrated on flowers-mini photos
when present, else on synthetic images). Latency is ``session.run`` only: p50 of up to ``--runs``
timed runs after ``--warmup``, per configuration; ``--rounds`` repeats the whole sweep interleaved
and keeps each configuration's best round (other jobs share this machine).

Run: ``python benchmarks/scripts/web_latency.py [--runs 60] [--rounds 2]``. Writes
``benchmarks/results/web_latency.json`` and ``.md``. Needs Chromium + playwright (see .ci/run) and
Node.js/npm for the page's runtime; skips with a message without them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common.py
from common import FLOWERS, RESULTS, ROOT, WEIGHTS, WORK

APP = ROOT / "web_demo"
OUT = WORK / "web_latency"
SIZE = 224
THREADS = (1, 2)
KINDS = ("fp32", "int8")

LITERT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{"imports": {"@litertjs/wasm-utils": "/litertjs/wasm-utils/dist/index.js"}}</script>
</head><body><script type="module">
// window.measure(model, threads, pixelsBase64, warmup, runs) -> {ms: [...], dtype, shape} or {error}
window.measure = async (name, threads, pixels, warmup, runs) => {
  try {
    const lr = await import("/litertjs/core/dist/index.js");
    await lr.loadLiteRt("/litertjs/core/wasm/", {threads: threads > 1});
    const bytes = new Uint8Array(await (await fetch("/models/" + name)).arrayBuffer());
    const model = await lr.loadAndCompile(bytes, {accelerator: "wasm", cpuOptions: {numThreads: threads}});
    const detail = model.getInputDetails()[0];
    const raw = Uint8Array.from(atob(pixels), c => c.charCodeAt(0));
    const data = detail.dtype === "float32" ? Float32Array.from(raw) : raw;
    const shape = [1, ...Object.values(detail.shape).slice(1)];
    const run = async () => {
      const input = new lr.Tensor(data, shape);
      const outputs = await model.run([input]);
      outputs[0].toTypedArray();
      input.delete(); outputs.forEach(t => t.delete());
    };
    for (let i = 0; i < warmup; i++) await run();
    const ms = [];
    for (let i = 0; i < runs; i++) { const t = performance.now(); await run(); ms.push(performance.now() - t); }
    return {ms, dtype: detail.dtype, shape: Object.values(detail.shape), isolated: crossOriginIsolated};
  } catch (err) {
    return {error: String(err && (err.message || err))};
  }
};
window.ready = true;
</script></body></html>"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="Timed runs per configuration and round.")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved repeats of the whole sweep.")
    parser.add_argument("--budget", type=float, default=15.0, help="Seconds of timed runs per configuration.")
    parser.add_argument("--no-litert", action="store_true", help="Skip the LiteRT.js comparison.")
    args = parser.parse_args(argv)

    from edge import serve
    from edge.runtimes import web

    reason = web.unavailable_reason()
    if not reason:
        try:
            serve.ensure_built(APP, print)
        except Exception as exc:  # noqa: BLE001  (npm missing or offline: a skip, not a failure)
            reason = str(exc)
    if reason:
        print(f"skipped: {reason}")
        return 0

    started = time.perf_counter()
    load_before = os.getloadavg()
    models, weights = make_models()
    image = sample_image()
    litert_dir = None if args.no_litert else litert_package()

    configs = [("onnxruntime native", kind, t) for kind in KINDS for t in THREADS]
    configs += [("onnxruntime-web (Chromium)", kind, t) for kind in KINDS for t in THREADS]
    configs += [("LiteRT native", kind, t) for kind in KINDS for t in THREADS]
    if litert_dir:
        configs += [("LiteRT.js (Chromium)", kind, t) for kind in KINDS for t in THREADS]
    results: dict[tuple, list[float]] = {c: [] for c in configs}
    notes: dict[tuple, str] = {}
    driver, browser = web.launch_browser()
    try:
        for round_ in range(args.rounds):
            for config in configs:
                try:
                    p50 = measure(config, models, image, args, browser, litert_dir)
                except Exception as exc:  # noqa: BLE001  (a configuration that cannot run is reported, not fatal)
                    notes[config] = str(exc).splitlines()[0][:160]
                    continue
                results[config].append(p50)
                print(f"round {round_ + 1}: {config[0]:28s} {config[1]:5s} {config[2]} thread(s): p50 {p50:7.2f} ms",
                      flush=True)
        notes.update(edge_tflite_in_litertjs(models, browser, litert_dir))
    finally:
        web.close_browser(driver, browser)

    from edge.bench.report import machine_info

    machine = machine_info()
    best = {c: min(v) for c, v in results.items() if v}
    ratios = {}
    for kind in KINDS:
        for t in THREADS:
            native = best.get(("onnxruntime native", kind, t))
            browser_p50 = best.get(("onnxruntime-web (Chromium)", kind, t))
            if native and browser_p50:
                ratios[f"onnxruntime-web / onnxruntime native, {kind}, {t} thread(s)"] = browser_p50 / native
            litert_js = best.get(("LiteRT.js (Chromium)", kind, t))
            if litert_js and browser_p50:
                ratios[f"onnxruntime-web / LiteRT.js, {kind}, {t} thread(s)"] = browser_p50 / litert_js
    result = {
        "model": f"MobileNetV2 alpha 1.0, {SIZE}x{SIZE}, 5 classes, {weights} weights",
        "machine": f"{machine.get('cpu')}, {machine.get('cores')} cpus, {machine.get('system')}",
        "chromium": browser_version(),
        "packages": {"onnxruntime": _version("onnxruntime"), "onnxruntime-web": serve.locked_runtime_version(APP),
                     "ai-edge-litert": _version("ai-edge-litert"), "@litertjs/core": litert_version(litert_dir),
                     "playwright": _version("playwright")},
        "timing": f"p50 of up to {args.runs} timed runs after {args.warmup} warm-up, best of {args.rounds} "
                  "interleaved rounds; engine call only",
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
        "sizes_mb": {name: round(path.stat().st_size / 1e6, 2) for name, path in models.items()},
        "p50_ms": [{"runtime": c[0], "quantize": c[1], "threads": c[2], "p50_ms": round(best[c], 3),
                    "rounds_ms": [round(v, 3) for v in results[c]]} for c in configs if c in best],
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "notes": {f"{c[0]} {c[1]} {c[2]}" if isinstance(c, tuple) else c: v for c, v in notes.items()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "web_latency.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "web_latency.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


# --- models ---------------------------------------------------------------------------------------


def make_models() -> tuple[dict[str, Path], str]:
    """edge's ONNX and TFLite exports (fp32, int8) of a MobileNetV2 224, and a batch-1 TFLite pair for LiteRT.js."""
    from edge import formats
    from edge.spec import ModelSpec
    from edge.train.model import build_model

    weights = str(WEIGHTS) if WEIGHTS.exists() else "none"
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = {f"mnv2_{kind}{fmt}": (fmt, kind) for fmt in (".onnx", ".tflite") for kind in KINDS}
    wanted.update({f"mnv2_batch1_{kind}.tflite": (".tflite", kind) for kind in KINDS})
    paths = {name: OUT / name for name in wanted}
    stamp = OUT / "weights.txt"
    if all(p.exists() for p in paths.values()) and stamp.is_file() and stamp.read_text() == weights:
        return paths, ("ImageNet" if weights != "none" else "random")
    labels = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    model, norm = build_model("mobilenet_v2", len(labels), SIZE, weights=weights, alpha=1.0)
    spec = ModelSpec(name="mnv2", backbone="mobilenet_v2", labels=labels, input_size=(SIZE, SIZE),
                     normalization=norm, alpha=1.0, weights=weights)
    calibration = calibration_images()
    for name, (_suffix, kind) in wanted.items():
        fmt = formats.for_path(paths[name])
        with batch_one(name.startswith("mnv2_batch1_")):
            fmt.export(model, spec, kind, paths[name], calibration if kind == "int8" else None, formats.ExportOptions())
        print(f"exported {name}", flush=True)
    stamp.write_text(weights)
    return paths, ("ImageNet" if weights != "none" else "random")


@contextlib.contextmanager
def batch_one(active: bool):
    """Trace edge's serving function with a fixed batch of 1 (for LiteRT.js, which cannot resize inputs)."""
    import edge.runtimes.tensorflow as tf_runtime

    if not active:
        yield
        return
    original = tf_runtime.serving_function

    def fixed(model, input_dtype="float32"):
        from edge.contract import INPUT_NAME, OUTPUT_NAME
        from edge.keras_setup import tf

        h, w = model.input_shape[1:3]

        @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.as_dtype(input_dtype), name=INPUT_NAME)],
                     autograph=False)
        def serve(image):
            return {OUTPUT_NAME: model(tf.cast(image, tf.float32), training=False)}

        return serve

    tf_runtime.serving_function = fixed
    try:
        yield
    finally:
        tf_runtime.serving_function = original


def calibration_images(count: int = 64) -> np.ndarray:
    from edge.data.images import load_images

    photos = sorted(FLOWERS.rglob("*.jpg")) if FLOWERS.is_dir() else []
    if photos:
        return load_images(photos[:: max(1, len(photos) // count)][:count], (SIZE, SIZE))
    from edge.data.synth import synth

    folder = OUT / "synth"
    if not folder.is_dir():
        synth(folder, classes=5, per_class=count // 5 + 1, image_size=SIZE, seed=0)
    return load_images(sorted(folder.rglob("*.*g"))[:count], (SIZE, SIZE))


def sample_image() -> np.ndarray:
    return calibration_images(8)[:1]


# --- measurements ---------------------------------------------------------------------------------


def measure(config, models, image, args, browser, litert_dir) -> float:
    from edge import formats
    from edge.bench import latency
    from edge.runtimes import web

    runtime, kind, threads = config
    if runtime == "onnxruntime-web (Chromium)":
        predictor = web.WebPredictor(models[f"mnv2_{kind}.onnx"], threads=threads)
        try:
            assert predictor.threads == threads, predictor.runtime
            seconds = predictor.time_calls(image, args.warmup, args.runs, args.budget)
        finally:
            predictor.close()
    elif runtime == "LiteRT.js (Chromium)":
        return litertjs_p50(models[f"mnv2_batch1_{kind}.tflite"], image, threads, args, browser, litert_dir)
    else:
        suffix = ".onnx" if runtime.startswith("onnxruntime") else ".tflite"
        predictor = formats.load(models[f"mnv2_{kind}{suffix}"], threads=threads)
        seconds = latency.time_calls(latency.invoker(predictor, image), args.warmup, args.runs, args.budget)
        del predictor
    return latency.summarize(seconds).p50_ms


def litert_package() -> Path | None:
    """web_demo/node_modules/@litertjs (the devDependency), installed with `npm ci` when missing."""
    folder = APP / "node_modules" / "@litertjs"
    if not (folder / "core" / "package.json").is_file() and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=APP, check=False,
                       capture_output=True, timeout=600)
    return folder if (folder / "core" / "package.json").is_file() else None


def litert_version(folder: Path | None) -> str:
    if not folder:
        return "not installed"
    return json.loads((folder / "core" / "package.json").read_text(encoding="utf-8"))["version"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """127.0.0.1 only: the LiteRT.js page, @litertjs from node_modules, and the benchmark's models."""

    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                                                ".js": "text/javascript", ".mjs": "text/javascript",
                                                ".wasm": "application/wasm"}

    def __init__(self, *a, litert: Path, models: Path, **kw):
        self.litert, self.models = litert, models
        super().__init__(*a, directory=str(models), **kw)

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path.startswith("/litertjs/") and ".." not in path:
            return str(self.litert / path[len("/litertjs/"):])
        if path.startswith("/models/") and ".." not in path:
            return str(self.models / Path(path).name)
        return "/nonexistent"

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/litert.html":
            body = LITERT_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


@functools.cache
def _litert_server(litert: Path) -> int:
    handler = functools.partial(_Handler, litert=litert, models=OUT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def litertjs_run(model: Path, image: np.ndarray, threads: int, warmup: int, runs: int, browser, litert: Path) -> dict:
    port = _litert_server(litert)
    page = browser.new_page()  # a fresh page per measurement: LiteRT.js loads its WASM module once per page
    try:
        page.set_default_timeout(300_000)
        page.goto(f"http://127.0.0.1:{port}/litert.html")
        page.wait_for_function("window.ready === true")
        return page.evaluate("([m, t, p, w, r]) => window.measure(m, t, p, w, r)",
                             [model.name, threads, base64.b64encode(image.tobytes()).decode(), warmup, runs])
    finally:
        page.close()


def litertjs_p50(model, image, threads, args, browser, litert) -> float:
    from edge.bench import latency

    out = litertjs_run(model, image, threads, args.warmup, args.runs, browser, litert)
    if "error" in out:
        raise RuntimeError(out["error"])
    return latency.summarize(np.asarray(out["ms"]) / 1000.0).p50_ms


def edge_tflite_in_litertjs(models, browser, litert) -> dict:
    """What LiteRT.js says of edge's own TFLite file (dynamic batch dimension)."""
    if not litert:
        return {"LiteRT.js": "not measured (@litertjs/core not installed: npm ci in web_demo/)"}
    out = litertjs_run(models["mnv2_int8.tflite"], sample_image(), 1, 0, 1, browser, litert)
    verdict = out.get("error") or "runs"
    return {"LiteRT.js on edge's own mnv2_int8.tflite (batch -1)": verdict}


def browser_version() -> str:
    from edge.runtimes import web

    try:
        done = subprocess.run([web.find_chromium(), "--version"], capture_output=True, text=True, timeout=30)
        return done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _version(name: str) -> str:
    from edge.runtimes import package_version

    return package_version(name)


def markdown(result: dict) -> str:
    lines = [
        "# In-browser latency: MobileNetV2 224 in headless Chromium vs native",
        "",
        f"{result['model']}; {result['machine']}; {result['chromium']}; {result['timing']}. "
        f"Load average before {result['load_average_before']}, after {result['load_average_after']} "
        f"(other jobs share this machine). Packages: "
        + ", ".join(f"{k} {v}" for k, v in result["packages"].items()) + ". Sizes (MB): "
        + ", ".join(f"{k} {v}" for k, v in result["sizes_mb"].items()) + ".",
        "",
        "| runtime | quantize | threads | p50 ms | rounds (p50 ms) |",
        "|---|---|---:|---:|---|",
    ]
    for row in result["p50_ms"]:
        lines.append(f"| {row['runtime']} | {row['quantize']} | {row['threads']} | {row['p50_ms']:.2f} | "
                     + ", ".join(f"{v:.2f}" for v in row["rounds_ms"]) + " |")
    lines += ["", "| ratio (p50) | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f}x |" for name, value in result["ratios"].items()]
    if result["notes"]:
        lines += ["", "Notes:"] + [f"- {k}: {v}" for k, v in result["notes"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
