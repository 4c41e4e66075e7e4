"""edge.bench: accuracy after conversion and CPU latency of every format, side by side.

``bench(["export/"], threads="1,2")`` is the API behind ``edge bench``; ``edge.bench.report`` writes
the rich table, ``bench.json``, ``bench.md`` and the accuracy-vs-latency chart.
"""

from edge.bench.runner import BenchResult, Row, bench

__all__ = ["bench", "BenchResult", "Row"]
