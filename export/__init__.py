"""edge.export: convert a trained run to TFLite, ONNX and Core ML, and verify every artifact.

The package is also the API function: ``edge.export(run_dir, formats=("tflite", "onnx"))`` runs
``edge.export.pipeline.export`` (what ``edge export`` calls). Inside: ``plan`` (validated
settings), ``source`` (run or .keras), ``gate`` (convert aside, verify, name or reject),
``remedies`` (int8-auto, QAT), ``report`` (``export_report.json``), ``formats/`` (one module per
format; the registry is ``edge.formats``) and ``calibration``.
"""

from edge.callable_package import make_callable
from edge.export.pipeline import export
from edge.export.report import Entry, ExportReport

__all__ = ["Entry", "ExportReport", "export"]

make_callable(__name__, export)
