"""``bench(...)``: the Python API behind ``edge bench``.

For every model (files or export directories) and every thread count: load it through its
format's runtime, run it on the labelled images (accuracy, top-5, per-class precision/recall,
confusion matrix; agreement and drop against the reference through ``edge.verify``, the same
code export's gate uses), then time the engine alone (``edge.bench.latency``). Core ML off macOS
runs through the MIL reference executor: accuracy yes, latency "n/a on this OS".
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import contract, metrics
from edge import verify as verification
from edge.bench import data as datasets
from edge.bench import latency, traps
from edge.bench import models as model_refs
from edge.bench.foreign import ForeignOptions
from edge.errors import EdgeError
from edge.spec import ModelSpec

COREML_NO_LATENCY = "n/a on this OS"  # Core ML latency needs Apple's runtime; never a made-up number


@dataclass
class Row:
    """One model at one thread count: what it is, how well it classifies, how fast it runs."""

    name: str
    path: str
    format: str
    quantize: str
    runtime: str
    threads: int | None
    batch: int
    count: int = 0
    accuracy: float | None = None
    top5: float | None = None  # None when the model has 5 classes or fewer (it would always be 1.0)
    macro_f1: float | None = None
    agreement: float | None = None
    drop_pts: float | None = None
    max_prob_diff: float | None = None
    reference_accuracy: float | None = None
    passed: bool | None = None  # drop_pts <= max_drop (None when there is no reference)
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    runs: int = 0
    throughput_ips: float | None = None
    latency_note: str = ""  # why there is no latency ("n/a on this OS")
    load_s: float | None = None
    size_bytes: int = 0
    peak_mem_mb: float | None = None
    flops: int | None = None
    floor_ms: float | None = None  # flops / sustained fp32 matmul FLOP/s at this thread count
    x_floor: float | None = None  # p50 / floor
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    rows: list[Row]
    data: str
    count: int
    reference: str
    reference_runtime: str
    max_drop: float | None
    warnings: list[str]
    machine: dict[str, Any]
    options: dict[str, Any]
    matmul: dict[str, Any] = field(default_factory=dict)  # threads -> microbenchmark result
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(row.passed is not False for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = data.pop("rows")  # one entry per model and thread count
        data["ok"] = self.ok
        data["memory_measure"] = ("peak_mem_mb: growth of the process's peak resident memory (Linux VmHWM, reset "
                                  "per model) while the model was loaded, run on the data and timed")
        return data


def parse_threads(value: str | Sequence[int] | int | None) -> list[int]:
    """``"1,2"`` -> [1, 2]; None -> [all cores]."""
    if value is None or value == "":
        return [os.cpu_count() or 1]
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        try:
            items = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise EdgeError(f"--threads must be a comma list of whole numbers like 1,2, not '{value}'.") from None
    else:
        items = [int(v) for v in value]
    if not items or any(t < 1 for t in items):
        raise EdgeError(f"--threads must list thread counts of at least 1, not '{value}'.")
    return list(dict.fromkeys(items))


def bench(
    models: Sequence[str | Path] | str | Path,
    data: str | Path | None = None,
    run: str | Path | None = None,
    reference: str | Path | None = None,
    threads: str | Sequence[int] | int | None = None,
    batch: int = 1,
    warmup: int = latency.DEFAULT_WARMUP,
    runs: int = latency.DEFAULT_RUNS,
    time_budget: float = latency.DEFAULT_BUDGET_S,
    max_drop: float | None = None,
    measure_latency: bool = True,
    floor: bool = False,
    labels: list[str] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> BenchResult:
    """Accuracy, agreement with the reference and CPU latency of every model, side by side."""
    from edge.console import console

    started = time.perf_counter()
    if isinstance(models, (str, Path)):
        models = [models]
    if data is not None and run is not None:
        raise EdgeError("Pass either --data DIR or --run RUN_DIR, not both.")
    if batch < 1 or warmup < 0 or runs < 1 or time_budget <= 0:
        raise EdgeError("--batch and --runs must be at least 1, --warmup at least 0 and --time-budget above 0.")
    thread_counts = parse_threads(threads)
    foreign = ForeignOptions(labels=labels, mean=mean, std=std)
    refs = model_refs.expand(models)
    metadata = {id(ref): model_refs.read_metadata(ref) for ref in refs}
    source_runs = [model_refs.source_run(ref, metadata[id(ref)]) for ref in refs]
    source_run = next((r for r in source_runs if r is not None), None)

    if data is not None:
        evalset = datasets.from_folder(data)
    elif run is not None:
        evalset = datasets.from_run(run)
    elif source_run is not None:
        evalset = datasets.from_run(source_run)
    else:
        raise EdgeError("These models do not name a run directory that still exists; pass --data DIR (class folders) "
                        "or --run RUN_DIR.")

    reference_ref = _reference(reference, refs, source_run if run is None else Path(run))
    ref_predictor, ref_cache = None, {}
    if reference_ref is not None:
        with console.status(f"Running the reference {reference_ref.name} on {len(evalset)} images..."):
            ref_predictor = model_refs.load(reference_ref, thread_counts[0], foreign)
            ref_images = evalset.images(ref_predictor.spec.input_size)
            ref_labels = evalset.labels_for(ref_predictor.spec, reference_ref.name)
            ref_cache["probs"] = _run_checked(ref_predictor, ref_images, reference_ref)
            ref_cache["accuracy"] = metrics.top_k_accuracy(ref_labels, ref_cache["probs"], 1)

    model_flops = _model_flops(ref_predictor, refs) if floor else None
    matmul: dict[str, Any] = {}
    if floor and model_flops:
        from edge.bench.flops import matmul_flops

        for t in thread_counts:
            with console.status(f"Measuring sustained fp32 matmul FLOP/s on {t} thread(s)..."):
                matmul[str(t)] = matmul_flops(t)

    rows: list[Row] = []
    warnings: list[str] = []
    keras_threads_done = False
    for ref in refs:
        accuracy_fields: dict[str, Any] | None = None
        for t in thread_counts:
            if ref.format == "keras" and keras_threads_done:
                continue
            if ref.format == "coreml" and t != thread_counts[0]:
                continue  # no thread setting and no latency off macOS: one row
            with console.status(f"Benchmarking {ref.name} ({t} thread{'s' if t > 1 else ''})..."):
                row, accuracy_fields, predictor = _bench_one(
                    ref, t, evalset, foreign, batch, warmup, runs, time_budget, measure_latency, accuracy_fields, ref_predictor,
                    ref_cache, max_drop)
            if ref.format == "keras":
                row.threads, fixed = _tf_threads()
                if fixed and len(thread_counts) > 1:
                    keras_threads_done = True
                    warnings.append(f"{ref.name}: TensorFlow's thread pool is fixed once it starts "
                                    f"(here at {row.threads}), so the Keras model has one row in the thread sweep.")
            if ref.format == "coreml" and row.p50_ms is None:
                row.threads = None
            if t == thread_counts[0]:
                warnings += traps.artifact_warnings(ref, predictor)
            if model_flops and row.p50_ms is not None and str(t) in matmul:
                row.flops = model_flops
                row.floor_ms = model_flops * row.batch / matmul[str(t)]["flops_per_s"] * 1000.0
                row.x_floor = row.p50_ms / row.floor_ms
            del predictor
            gc.collect()
            rows.append(row)
            if on_row:
                on_row(row)
    warnings += traps.measured_warnings(rows)
    from edge.bench.report import machine_info

    return BenchResult(
        rows=rows, data=evalset.source, count=len(evalset),
        reference=str(reference_ref.path) if reference_ref else "",
        reference_runtime=str(getattr(ref_predictor, "runtime", "")) if ref_predictor else "",
        max_drop=max_drop, warnings=list(dict.fromkeys(warnings)), machine=machine_info(), matmul=matmul,
        options={"threads": thread_counts, "batch": batch, "warmup": warmup, "runs": runs, "time_budget_s": time_budget},
        seconds=time.perf_counter() - started,
    )


def _reference(reference, refs: list[model_refs.ModelRef], run_dir: Path | None) -> model_refs.ModelRef | None:
    """``--reference``, else the source run's model.keras, else a .keras among the model_refs."""
    if reference is not None:
        path = Path(reference).expanduser()
        if not path.exists():
            raise EdgeError(f"Reference model {path} does not exist.")
        return model_refs.expand([path])[0]
    if run_dir is not None and (Path(run_dir) / "model.keras").exists():
        return model_refs.ModelRef(Path(run_dir) / "model.keras", "keras", "fp32", str(run_dir))
    return next((ref for ref in refs if ref.format == "keras"), None)


def _bench_one(ref, threads, evalset, foreign, batch, warmup, runs, budget_s, measure, accuracy_fields, ref_predictor,
               ref_cache, max_drop):
    known = model_refs.read_metadata(ref).get(contract.KEY_SPEC)
    if known:  # decode the images before the memory baseline, so peak memory is the model's own
        evalset.images(ModelSpec.from_json(known).input_size)
    memory = latency.PeakMemory()
    memory.start()
    start = time.perf_counter()
    predictor = model_refs.load(ref, threads, foreign)
    load_s = time.perf_counter() - start
    spec = predictor.spec
    runtime = str(getattr(predictor, "runtime", ref.format))
    row = Row(name=ref.name, path=str(ref.path), format=ref.format, quantize=ref.quantize or _kind(ref, predictor),
              runtime=runtime, threads=threads, batch=batch, load_s=load_s, size_bytes=_size(ref.path),
              labels=list(spec.labels))
    images = evalset.images(spec.input_size)
    if accuracy_fields is None:
        labels = evalset.labels_for(spec, ref.name)
        probs = _run_checked(predictor, images, ref)
        report = metrics.classification_report(labels, probs, spec.labels)
        accuracy_fields = {
            "count": report["count"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
            "top5": report["top5"] if spec.num_classes > 5 else None,
            "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
        }
        if ref_predictor is not None:
            reference_probs = _align(ref_cache["probs"], ref_predictor.spec.labels, spec.labels)
            if reference_probs is not None:
                result = verification.compare(reference_probs, probs, labels)
                accuracy_fields.update(agreement=result.agreement, drop_pts=result.drop_pts,
                                       max_prob_diff=result.max_prob_diff, reference_accuracy=result.reference_accuracy)
    for key, value in accuracy_fields.items():
        setattr(row, key, value)
    if row.drop_pts is not None and max_drop is not None:
        row.passed = bool(row.drop_pts <= max_drop)
    if not measure:
        row.latency_note = "not measured"
    elif ref.format == "coreml" and "macOS" not in runtime:
        row.latency_note = COREML_NO_LATENCY
    else:
        batch_images = _batch_of(images, batch)
        call = latency.invoker(predictor, batch_images)
        stats = latency.summarize(latency.time_calls(call, warmup, runs, budget_s), batch)
        for key in ("mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "runs", "throughput_ips"):
            setattr(row, key, getattr(stats, key))
    row.peak_mem_mb = memory.stop_mb()
    return row, accuracy_fields, predictor


def _run_checked(predictor, images: np.ndarray, ref) -> np.ndarray:
    """The predictor's probabilities, with shape problems turned into one sentence."""
    spec = predictor.spec
    try:
        probs = np.asarray(predictor(images))
    except EdgeError:
        raise
    except Exception as exc:  # noqa: BLE001  (runtime refusing the input)
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise EdgeError(f"{ref.path} does not accept the {spec.input_size[0]}x{spec.input_size[1]} RGB images its "
                        f"metadata asks for (the runtime said: {text}).") from exc
    if probs.ndim != 2 or probs.shape != (len(images), spec.num_classes):
        raise EdgeError(f"{ref.path} returned outputs of shape {probs.shape} for {len(images)} images, but its "
                        f"metadata names {spec.num_classes} classes.")
    return probs


def _align(reference_probs: np.ndarray, reference_labels: list[str], labels: list[str]) -> np.ndarray | None:
    """The reference's probabilities in another model's label order (None if the label sets differ)."""
    if list(reference_labels) == list(labels):
        return reference_probs
    if sorted(reference_labels) != sorted(labels):
        return None
    order = [list(reference_labels).index(label) for label in labels]
    return reference_probs[:, order]


def _batch_of(images: np.ndarray, batch: int) -> np.ndarray:
    if len(images) >= batch:
        return images[:batch]
    reps = -(-batch // len(images))
    return np.concatenate([images] * reps)[:batch]


def _kind(ref, predictor) -> str:
    interpreter = getattr(predictor, "_interpreter", None)
    if ref.format == "tflite" and interpreter is not None:
        return traps.tflite_kind(interpreter)
    return "fp32" if ref.format == "keras" else ""


def _size(path: Path) -> int:
    from edge.export.base import path_size

    return path_size(path)


def _tf_threads() -> tuple[int, bool]:
    """TensorFlow's intra-op thread count and whether it can no longer be changed."""
    from edge.keras_setup import tf

    count = tf.config.threading.get_intra_op_parallelism_threads() or (os.cpu_count() or 1)
    return count, True


def _model_flops(ref_predictor, refs) -> int | None:
    """FLOPs from the Keras reference (or a .keras among the models); None when there is none."""
    model = getattr(ref_predictor, "model", None)
    if model is None:
        keras_ref = next((r for r in refs if r.format == "keras"), None)
        if keras_ref is None:
            return None
        from edge.export.keras_model import load_keras

        model = load_keras(keras_ref.path)
    from edge.bench.flops import model_flops

    return model_flops(model)
