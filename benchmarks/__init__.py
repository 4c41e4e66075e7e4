"""edge.bench: accuracy after conversion and CPU latency of every format, side by side.

The package is also the API function: ``edge.bench(["export/"], threads="1,2")`` runs
``edge.bench.runner.bench`` (what ``edge bench`` calls); ``edge.bench.report`` writes the table,
``bench.json``, ``bench.md`` and the accuracy-vs-latency chart. The measurement scripts behind
``benchmarks/RESULTS.md`` live in ``benchmarks/scripts/`` (not installed).
"""

from edge.bench.runner import BenchResult, BenchSettings, Row, bench
from edge.callable_package import make_callable

__all__ = ["BenchResult", "BenchSettings", "Row", "bench"]

make_callable(__name__, bench)
