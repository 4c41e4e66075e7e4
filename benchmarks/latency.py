"""Latency measurement: a tight timed loop around one runtime call, and its statistics.

Only the engine's own work is inside the timed region. Images are decoded, resized, cast and
quantized once before the loop (``invoker``); each timed call runs the engine on the prepared
input and reads the output back.

- TFLite (LiteRT): ``invoke`` + ``get_tensor`` (the input is set once; the tensor keeps it).
- ONNX (onnxruntime): ``session.run`` on a prepared array.
- Keras (TensorFlow): the compiled serving ``tf.function`` on a prepared tensor, output ``.numpy()``.
- A predictor with ``bench_call(images) -> callable``: that callable.
- Anything else: the Predictor's own ``__call__`` on the prepared uint8 batch.

Warm-up runs come first; then timed runs until ``runs`` are done or ``budget_s`` has passed
(at least ``min_runs``).
"""

from __future__ import annotations

import math
import re
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DEFAULT_WARMUP = 10
DEFAULT_RUNS = 200
DEFAULT_BUDGET_S = 10.0
MIN_RUNS = 5


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of ``runs`` timed calls of ``batch`` images, in milliseconds."""

    runs: int
    batch: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput_ips: float  # images per second at the mean latency

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics."""
    data = sorted(float(v) for v in values)
    if not data:
        return float("nan")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(seconds, batch: int = 1) -> LatencyStats:
    """Statistics of per-call durations given in seconds."""
    ms = np.asarray(list(seconds), np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no timed runs to summarize")
    mean = float(ms.mean())
    return LatencyStats(
        runs=int(ms.size),
        batch=int(batch),
        mean_ms=mean,
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        min_ms=float(ms.min()),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=float(ms.max()),
        throughput_ips=batch * 1000.0 / mean if mean > 0 else float("inf"),
    )


def time_calls(call: Callable[[], object], warmup: int = DEFAULT_WARMUP, runs: int = DEFAULT_RUNS,
               budget_s: float | None = DEFAULT_BUDGET_S, min_runs: int = MIN_RUNS) -> list[float]:
    """Durations in seconds of timed ``call()``s after ``warmup`` untimed ones."""
    for _ in range(max(0, warmup)):
        call()
    clock = time.perf_counter
    durations: list[float] = []
    append = durations.append
    deadline = clock() + budget_s if budget_s else math.inf
    for i in range(max(runs, min_runs)):
        start = clock()
        call()
        end = clock()
        append(end - start)
        if i + 1 >= min_runs and (i + 1 >= runs or end >= deadline):
            break
    return durations


def invoker(predictor, images: np.ndarray) -> Callable[[], object]:
    """A no-argument callable running ``predictor``'s engine once on ``images``.

    Predictors offer ``bench_call(images)``: the input is prepared once, outside the timed
    region, and the returned call is only the runtime's own work. Others are timed whole.
    """
    images = np.ascontiguousarray(images)
    hook = getattr(predictor, "bench_call", None)
    if callable(hook):
        return hook(images)
    return lambda: predictor(images)


# --- memory -------------------------------------------------------------------------------------

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class PeakMemory:
    """Peak resident memory (RSS) the process gains while a model is loaded and run.

    On Linux the kernel's high-water mark (VmHWM) is reset at ``start`` (``/proc/self/clear_refs``)
    and read at ``stop``; the result is that peak minus the RSS at ``start``: native runtime
    buffers, weights and arena included, not just Python objects. Elsewhere it falls back to the
    growth of ``ru_maxrss`` (0 when an earlier peak was higher), and ``method`` says which.
    """

    def __init__(self):
        self.baseline_kb = 0
        self.method = ""

    def start(self) -> None:
        rss = _status_kb("VmRSS")
        try:
            _CLEAR_REFS.write_text("5")
            self.method = "VmHWM"
        except OSError:
            self.method = "ru_maxrss"
        if self.method == "VmHWM" and rss is not None:
            self.baseline_kb = rss
        else:
            self.method = "ru_maxrss"
            self.baseline_kb = _maxrss_kb()

    def stop_mb(self) -> float:
        peak = _status_kb("VmHWM") if self.method == "VmHWM" else _maxrss_kb()
        return max(0, (peak or 0) - self.baseline_kb) / 1024.0


def _maxrss_kb() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if value > 1 << 32 else value  # macOS reports bytes
