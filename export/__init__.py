"""edge.export: convert a trained run to TFLite, ONNX and Core ML, and verify every artifact.

``export(run_dir, formats=("tflite", "onnx"), quantize=("fp32", "int8"))`` is the API behind
``edge export``; ``edge.export.formats`` is the registry of formats (each with ``export``/``load``).
"""

from edge.export.pipeline import Entry, ExportReport, export

__all__ = ["export", "ExportReport", "Entry"]
