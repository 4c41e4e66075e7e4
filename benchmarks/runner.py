"""``bench(...)``: the Python API behind ``edge bench``.

For every model (files or export directories) and every thread count: load it through its
format's runtime, run it on the labelled images (accuracy, top-5, per-class precision/recall,
confusion matrix; agreement and drop against the reference through ``edge.verify``, the same
code export's gate uses; once per model, its agreement with itself when the images are resized
the way other apps do, ``edge.data.resize``, and for the formats MediaPipe Tasks takes, when its
interpreter is found, MediaPipe's ImageClassifier given the photo files, ``edge.runtimes.mediapipe``),
then time the engine alone (``edge.bench.latency``). Core ML off macOS runs through the MIL
reference executor: accuracy yes, latency "n/a on this OS".
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edge import contract, metrics
from edge import formats as registry
from edge import verify as verification
from edge.bench import data as datasets
from edge.bench import latency, traps
from edge.bench import models as model_refs
from edge.data.resize import others
from edge.errors import EdgeError, one_line
from edge.fileio import path_size
from edge.rundir import MODEL_FILE
from edge.runtimes import mediapipe as mediapipe_runtime
from edge.runtimes import web as web_runtime
from edge.runtimes.foreign import ForeignOptions
from edge.spec import ModelSpec


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
    changed: int | None = None  # images whose top-1 differs from the reference's, and of them ...
    changed_unsure: int | None = None  # ... where the reference was unsure (edge.verify.UNSURE_MARGIN)
    drop_pts: float | None = None
    max_prob_diff: float | None = None
    reference_accuracy: float | None = None
    passed: bool | None = None  # drop_pts <= max_drop (None when there is no reference)
    # variant -> top-1 agreement with the model's own answers / top-1 accuracy, the images resized another
    # app's way instead of edge's (edge.data.resize; empty with resize_variants=False); for the formats
    # MediaPipe takes, also "mediapipe": its ImageClassifier given the photo files (edge.runtimes.mediapipe)
    resize_agreement: dict[str, float] = field(default_factory=dict)
    resize_accuracy: dict[str, float] = field(default_factory=dict)
    mediapipe_note: str = ""  # why there is no "mediapipe" entry for a model MediaPipe was asked about
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
    # the reference's Row.resize_agreement / resize_accuracy when it is not one of the benched rows
    reference_resize_agreement: dict[str, float] = field(default_factory=dict)
    reference_resize_accuracy: dict[str, float] = field(default_factory=dict)
    # the "mediapipe" entries: {"python", "version"} of the interpreter that ran them, or {"note"} saying why
    # there are none ({} when no model asked for them: no TFLite model, or resize_variants=False)
    mediapipe: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)  # what bench() wrote: json, markdown, chart

    @property
    def ok(self) -> bool:
        return all(row.passed is not False for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("files")
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


NATIVE = "native"
RUNTIME_KINDS = (NATIVE, web_runtime.KIND)


def parse_runtimes(value: str | Sequence[str] | None) -> list[str]:
    """``"native,web"`` -> ["native", "web"]; None -> ["native"]."""
    items = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value or [NATIVE])]
    items = [v for v in items if v] or [NATIVE]
    unknown = [v for v in items if v not in RUNTIME_KINDS]
    if unknown:
        raise EdgeError(f"--runtime takes a comma list of {', '.join(RUNTIME_KINDS)}, not '{', '.join(unknown)}'.")
    return list(dict.fromkeys(items))


DEFAULT_OUT = "bench"  # where results go, beside the first model


@dataclass
class BenchSettings:
    """Every option of ``edge bench`` with its default, validated once (the CLI shows these)."""

    threads: str | Sequence[int] | int | None = None  # None: all cores
    batch: int = 1
    warmup: int = latency.DEFAULT_WARMUP
    runs: int = latency.DEFAULT_RUNS
    time_budget: float = latency.DEFAULT_BUDGET_S
    max_drop: float | None = None
    measure_latency: bool = True
    floor: bool = False
    labels: list[str] | None = None  # for models without edge metadata
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    # "native": each format's own runtime here; "web": the in-browser runtime (onnxruntime-web in headless
    # Chromium, edge.runtimes.web) for the formats it runs. A comma list gives rows for each.
    runtime: str | Sequence[str] = NATIVE
    # each model's top-1 agreement with itself when the images are resized as other apps do (edge.data.resize)
    resize_variants: bool = True
    # MediaPipe's own Python for the "mediapipe" entry (None: $EDGE_MEDIAPIPE_PYTHON, else ./.venv-mediapipe;
    # edge.runtimes.mediapipe.locate); an explicit path must be an executable file
    mediapipe_python: str | Path | None = None
    thread_counts: list[int] = field(default_factory=list, init=False)
    runtime_kinds: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.batch < 1 or self.warmup < 0 or self.runs < 1 or not self.time_budget > 0:
            raise EdgeError("--batch and --runs must be at least 1, --warmup at least 0 and --time-budget above 0.")
        if self.max_drop is not None and not self.max_drop >= 0:
            raise EdgeError(f"--max-drop must be a number of points of at least 0, not {self.max_drop}.")
        if not isinstance(self.resize_variants, bool):
            raise EdgeError(f"resize_variants must be True or False, not {self.resize_variants!r}.")
        if self.mediapipe_python is not None:
            self.mediapipe_python = mediapipe_runtime.check_python(self.mediapipe_python)
        self.thread_counts = parse_threads(self.threads)
        self.runtime_kinds = parse_runtimes(self.runtime)

    @property
    def foreign(self) -> ForeignOptions:
        return ForeignOptions(labels=self.labels, mean=self.mean, std=self.std)

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.thread_counts, "batch": self.batch, "warmup": self.warmup, "runs": self.runs,
                "time_budget_s": self.time_budget, "runtime": self.runtime_kinds,
                "resize_variants": self.resize_variants,
                "mediapipe_python": None if self.mediapipe_python is None else str(self.mediapipe_python)}


@dataclass
class _Reference:
    """The reference model's predictor and its outputs on the eval set (None when there is none)."""

    ref: model_refs.ModelRef | None = None
    predictor: Any = None
    probs: np.ndarray | None = None


def bench(
    models: Sequence[str | Path] | str | Path | None = None,
    data: str | Path | None = None,
    run: str | Path | None = None,
    reference: str | Path | None = None,
    *,
    out: str | Path | None = None,
    write: bool = True,
    json_file: str | Path | None = None,
    quiet: bool = False,
    on_row: Callable[[Row], None] | None = None,
    **options: Any,
) -> BenchResult:
    """Accuracy, agreement with the reference and CPU latency of every model, side by side.

    ``options`` are the fields of ``BenchSettings`` (threads, batch, warmup, runs, time_budget,
    max_drop, measure_latency, floor, labels, mean, std, runtime, resize_variants, mediapipe_python);
    ``quiet`` prints nothing. Unless ``write=False``, ``bench.json``, ``bench.md`` and ``bench.png`` are written to ``out``
    (default: ``bench/`` beside the first model) and ``json_file``, as ``edge bench`` does. ``models=None``:
    the newest export folder under ``./runs`` (said on screen unless ``quiet``).
    """
    from edge.console import console, quiet_status

    known = {f.name for f in fields(BenchSettings) if f.init}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EdgeError(f"bench() got unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    settings = BenchSettings(**options)
    status = quiet_status if quiet else console.status
    started = time.perf_counter()
    models = [models] if isinstance(models, (str, Path)) else list(models or [])
    if not models:
        from edge.discover import latest_export

        found = latest_export()  # the newest RUN/export under ./runs (edge.discover)
        if not quiet:
            console.print(found.describe(), highlight=False)
        models = [found.path]
    if data is not None and run is not None:
        raise EdgeError("Pass either --data DIR or --run RUN_DIR, not both.")
    refs = model_refs.expand(models)
    source_runs = [model_refs.source_run(ref, model_refs.read_metadata(ref)) for ref in refs]
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
    ref = _Reference(reference_ref)
    if reference_ref is not None:
        with status(f"Running the reference {reference_ref.name} on {len(evalset)} images..."):
            ref.predictor = model_refs.load(reference_ref, settings.thread_counts[0], settings.foreign)
            ref_spec = ref.predictor.spec
            ref.probs = _run_checked(ref.predictor, evalset.images(ref_spec.input_size, ref_spec.resize_filter),
                                     reference_ref)
    reference_resize: dict[str, dict[str, float]] = {}
    if settings.resize_variants and ref.predictor is not None and not _benched(reference_ref, refs, settings):
        with status(f"Running the reference {reference_ref.name} on {len(evalset)} images resized other ways..."):
            reference_resize = _reference_resize(ref, evalset)

    warnings: list[str] = []
    mediapipe_info, mediapipe = _mediapipe(settings, refs, evalset, status, warnings)

    model_flops = _model_flops(ref.predictor, refs) if settings.floor else None
    matmul: dict[str, Any] = {}
    if settings.floor and model_flops:
        from edge.bench.flops import matmul_flops

        for t in settings.thread_counts:
            with status(f"Measuring sustained fp32 matmul FLOP/s on {t} thread(s)..."):
                matmul[str(t)] = matmul_flops(t)

    rows: list[Row] = []
    for model, kind in ((m, k) for m in refs for k in settings.runtime_kinds):
        fmt = model.fmt
        if kind == web_runtime.KIND and not web_runtime.runs(fmt):
            warnings.append(f"{model.name}: the in-browser runtime runs {web_runtime.formats_note()} only; no web row.")
            continue
        accuracy_fields: dict[str, Any] | None = None
        # a runtime without a per-model thread setting gets one row in a thread sweep
        sweep = settings.thread_counts if fmt.per_load_threads else settings.thread_counts[:1]
        for t in sweep:
            with status(f"Benchmarking {model.name} ({t} thread{'s' if t > 1 else ''})..."):
                row, accuracy_fields, predictor = _bench_one(model, t, evalset, settings, ref, accuracy_fields, kind,
                                                             mediapipe.get(model.path) if kind == NATIVE else None)
            if not fmt.per_load_threads:
                row.threads = _actual_threads(predictor) if row.p50_ms is not None else None
                if fmt.thread_note and len(settings.thread_counts) > 1:
                    warnings.append(f"{model.name}: {fmt.thread_note}.")
            if t == settings.thread_counts[0]:
                warnings += traps.artifact_warnings(model, predictor)
            if model_flops and row.p50_ms is not None and str(t) in matmul:
                row.flops = model_flops
                row.floor_ms = model_flops * row.batch / matmul[str(t)]["flops_per_s"] * 1000.0
                row.x_floor = row.p50_ms / row.floor_ms
            if callable(getattr(predictor, "close", None)):
                predictor.close()  # the browser runtime: its Chromium and server
            del predictor
            gc.collect()
            rows.append(row)
            if on_row:
                on_row(row)
    warnings += traps.measured_warnings(rows)
    from edge.bench.report import machine_info

    result = BenchResult(
        rows=rows, data=evalset.source, count=len(evalset),
        reference=str(reference_ref.path) if reference_ref else "",
        reference_runtime=str(getattr(ref.predictor, "runtime", "")) if ref.predictor else "",
        max_drop=settings.max_drop, warnings=list(dict.fromkeys(warnings)), machine=machine_info(), matmul=matmul,
        **{f"reference_{key}": value for key, value in reference_resize.items()}, mediapipe=mediapipe_info,
        options=settings.to_dict(), seconds=time.perf_counter() - started,
    )
    if write and rows:
        from edge.bench.report import write_all

        out_dir = Path(out) if out is not None else Path(rows[0].path).parent / DEFAULT_OUT
        result.files = write_all(result, out_dir, Path(json_file) if json_file is not None else None)
    return result


def _reference(reference, refs: list[model_refs.ModelRef], run_dir: Path | None) -> model_refs.ModelRef | None:
    """``--reference``, else the source run's model.keras, else a .keras among the model_refs."""
    if reference is not None:
        path = Path(reference).expanduser()
        if not path.exists():
            raise EdgeError(f"Reference model {path} does not exist.")
        return model_refs.expand([path])[0]
    reference_format = registry.reference()
    if run_dir is not None and (Path(run_dir) / MODEL_FILE).exists():
        return model_refs.ModelRef(Path(run_dir) / MODEL_FILE, reference_format.name, "fp32", str(run_dir))
    return next((ref for ref in refs if ref.fmt is reference_format), None)


def _bench_one(model: model_refs.ModelRef, threads: int, evalset: datasets.EvalSet, settings: BenchSettings,
               ref: _Reference, accuracy_fields: dict[str, Any] | None, kind: str = NATIVE,
               mediapipe: mediapipe_runtime.Classified | None = None) -> tuple[Row, dict[str, Any], Any]:
    """One model at one thread count on one runtime kind: load, accuracy (once per model and kind), latency, memory."""
    known = model_refs.read_metadata(model).get(contract.KEY_SPEC)
    resize_variants = settings.resize_variants and accuracy_fields is None
    if known:  # decode the images before the memory baseline, so peak memory is the model's own
        known_spec = ModelSpec.from_json(known)
        own = known_spec.resize_filter
        evalset.stacks(known_spec.input_size, (own, *(others(own) if resize_variants else ())))
    memory = latency.PeakMemory()
    memory.start()
    start = time.perf_counter()
    if kind == web_runtime.KIND:
        predictor = web_runtime.load(model.path, threads)
    else:
        predictor = model_refs.load(model, threads, settings.foreign)
    load_s = time.perf_counter() - start
    spec = predictor.spec
    row = Row(name=model.name, path=str(model.path), format=model.format,
              quantize=model.quantize or traps.kind(model, predictor),
              runtime=str(getattr(predictor, "runtime", model.format)), threads=threads, batch=settings.batch,
              load_s=load_s, size_bytes=path_size(model.path), labels=list(spec.labels))
    images = evalset.images(spec.input_size, spec.resize_filter)
    if accuracy_fields is None:
        accuracy_fields = _accuracy(model, predictor, images, evalset, ref, resize_variants, mediapipe)
    for key, value in accuracy_fields.items():
        setattr(row, key, value)
    if row.drop_pts is not None and settings.max_drop is not None:
        row.passed = bool(row.drop_pts <= settings.max_drop)
    if not settings.measure_latency:
        row.latency_note = "not measured"
    elif model.fmt.latency_note:
        row.latency_note = model.fmt.latency_note  # never a made-up number
    else:
        timed = _batch_of(images, settings.batch)
        own_clock = getattr(predictor, "time_calls", None)  # the browser runtime times in the page itself
        if callable(own_clock):
            seconds = own_clock(timed, settings.warmup, settings.runs, settings.time_budget)
        else:
            seconds = latency.time_calls(latency.invoker(predictor, timed), settings.warmup, settings.runs,
                                         settings.time_budget)
        stats = latency.summarize(seconds, settings.batch)
        for key in ("mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "runs", "throughput_ips"):
            setattr(row, key, getattr(stats, key))
    row.peak_mem_mb = memory.stop_mb()
    if kind == web_runtime.KIND:
        row.peak_mem_mb = None  # the engine's memory is Chromium's, not this process's
    return row, accuracy_fields, predictor


def _accuracy(model: model_refs.ModelRef, predictor, images: np.ndarray, evalset: datasets.EvalSet,
              ref: _Reference, resize_variants: bool = False,
              mediapipe: mediapipe_runtime.Classified | None = None) -> dict[str, Any]:
    """The Row fields that do not depend on the thread count: accuracy, agreement with the reference and,
    with ``resize_variants``, the model's agreement with itself under other apps' resizing (and MediaPipe's
    answers on the photo files, ``mediapipe``, against its answers through edge's decode and resize)."""
    spec = predictor.spec
    labels = evalset.labels_for(spec, model.name)
    probs = _run_checked(predictor, images, model)
    report = metrics.classification_report(labels, probs, spec.labels)
    fields_ = {
        "count": report["count"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
        "top5": report["top5"] if spec.num_classes > 5 else None,
        "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
    }
    if ref.predictor is not None and ref.probs is not None:
        reference_probs = _align(ref.probs, ref.predictor.spec.labels, spec.labels)
        if reference_probs is not None:
            result = verification.compare(reference_probs, probs, labels)
            fields_.update(agreement=result.agreement, changed=result.changed, changed_unsure=result.changed_unsure,
                           drop_pts=result.drop_pts,
                           max_prob_diff=result.max_prob_diff, reference_accuracy=result.reference_accuracy)
    if resize_variants:
        fields_.update(_resize_fields(model, predictor, probs, labels, evalset))
        if mediapipe is not None and mediapipe.refused:
            fields_["mediapipe_note"] = f"refused ({mediapipe.refused})"
        elif mediapipe is not None:
            fields_["resize_agreement"][mediapipe_runtime.KEY] = float(np.mean(mediapipe.top1 == probs.argmax(axis=1)))
            fields_["resize_accuracy"][mediapipe_runtime.KEY] = float(np.mean(mediapipe.top1 == labels))
    return fields_


def _resize_fields(model, predictor, probs: np.ndarray, labels: np.ndarray,
                   evalset: datasets.EvalSet) -> dict[str, dict[str, float]]:
    """``resize_agreement`` and ``resize_accuracy`` (variant -> 0..1): the model's top-1 on the images resized
    each other way (``edge.data.resize.others``) against its top-1 with its own resize (``probs``)."""
    agreement, accuracy = {}, {}
    own = predictor.spec.resize_filter
    for variant, images in evalset.stacks(predictor.spec.input_size, others(own)).items():
        result = verification.compare(probs, _run_checked(predictor, images, model), labels)
        agreement[variant], accuracy[variant] = result.agreement, result.accuracy
    return {"resize_agreement": agreement, "resize_accuracy": accuracy}


def _mediapipe(settings: BenchSettings, refs: list[model_refs.ModelRef], evalset: datasets.EvalSet, status,
               warnings: list[str]) -> tuple[dict[str, str], dict[Path, mediapipe_runtime.Classified]]:
    """MediaPipe's answers on the photo files for every model whose format it takes, in one subprocess:
    (``BenchResult.mediapipe``, model path -> ``Classified``). Nothing without resize variants or such a model;
    no interpreter found, or a failure of the one found, is a note (a ``--mediapipe-python`` that cannot
    import MediaPipe is an error); photos MediaPipe could not read are a warning."""
    targets = [r for r in refs if r.fmt.runs_in_mediapipe]
    if not (settings.resize_variants and NATIVE in settings.runtime_kinds and targets):
        return {}, {}
    found = mediapipe_runtime.locate(settings.mediapipe_python)
    if found.python is None:
        return {"note": found.note}, {}
    try:
        with status("Starting MediaPipe Tasks..."):
            version = mediapipe_runtime.version(found.python)
    except EdgeError as exc:
        if found.source == mediapipe_runtime.OPTION:
            raise  # asked for by name: a bench without it is not what the user wanted
        return {"python": str(found.python), "note": f"No mediapipe entries: {exc}"}, {}
    try:
        with status(f"Running MediaPipe Tasks' ImageClassifier on {len(evalset)} photo files..."):
            results = mediapipe_runtime.classify_files(found.python, [r.path for r in targets], evalset.paths)
    except EdgeError as exc:
        return {"python": str(found.python), "version": version, "note": f"No mediapipe entries: {exc}"}, {}
    for ref in targets:
        unreadable = results[ref.path].unreadable
        if unreadable:
            photo, error = next(iter(unreadable.items()))
            warnings.append(f"{ref.name}: MediaPipe could not read {len(unreadable)} of {len(evalset)} photos (first "
                            f"{Path(photo).name}: {error}); they count against its mediapipe entry.")
    return {"python": str(found.python), "version": version}, results


def _benched(reference: model_refs.ModelRef | None, refs: list[model_refs.ModelRef], settings: BenchSettings) -> bool:
    """Whether the reference is also one of the native rows (which then carry its resize numbers)."""
    if reference is None or NATIVE not in settings.runtime_kinds:
        return False
    return any(r.path.resolve() == reference.path.resolve() for r in refs)


def _reference_resize(ref: _Reference, evalset: datasets.EvalSet) -> dict[str, dict[str, float]]:
    """The reference's ``_resize_fields`` ({} when the data has classes it does not know: no accuracy to give)."""
    try:
        labels = evalset.labels_for(ref.predictor.spec, ref.ref.name)
    except EdgeError:
        return {}
    return _resize_fields(ref.ref, ref.predictor, ref.probs, labels, evalset)


def _run_checked(predictor, images: np.ndarray, ref) -> np.ndarray:
    """The predictor's probabilities, with shape problems turned into one sentence."""
    spec = predictor.spec
    try:
        probs = np.asarray(predictor(images))
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"{ref.path} does not accept the {spec.input_size[0]}x{spec.input_size[1]} RGB images its "
                        f"metadata asks for (the runtime said: {one_line(exc)}).") from exc
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


def _actual_threads(predictor) -> int | None:
    """The thread count a runtime without a per-model setting actually uses (when it says)."""
    return getattr(predictor, "threads", None)


def _model_flops(ref_predictor, refs) -> int | None:
    """FLOPs from the Keras reference (or a .keras among the models); None when there is none."""
    model = getattr(ref_predictor, "model", None)
    if model is None:
        keras_ref = next((r for r in refs if r.fmt is registry.reference()), None)
        if keras_ref is None:
            return None
        from edge.runtimes.tensorflow import load_keras

        model = load_keras(keras_ref.path)
    from edge.bench.flops import model_flops

    return model_flops(model)
