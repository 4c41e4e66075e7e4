"""edge: from a folder of photos to a verified on-device image classifier.

The public Python API; the ``edge`` command line is a thin layer over these functions::

    from edge import synth, train, export, bench
    synth("data/", classes=5, per_class=60)
    result = train("data/", run_dir="runs/demo", backbone="mobilenet_v2", weights="none")

Importing edge is cheap: every name below is imported on first use (PEP 562), so TensorFlow is
loaded only when a function needs it. The stage packages ``edge.train``, ``edge.export`` and
``edge.bench`` are callable (``edge.train("data/")`` trains) and stay packages
(``edge.train.TrainConfig``, ``import edge.export.gate``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_API: dict[str, tuple[str, str]] = {
    "EdgeError": ("edge.errors", "EdgeError"),
    "ModelSpec": ("edge.spec", "ModelSpec"),
    "scan": ("edge.data.scan", "scan"),
    "synth": ("edge.data.synth", "synth"),
    "TrainConfig": ("edge.train.config", "TrainConfig"),
    "TrainResult": ("edge.train.runner", "TrainResult"),
    "train": ("edge.train", ""),  # the stage packages are callable: edge.train(...) trains
    "ExportReport": ("edge.export.report", "ExportReport"),
    "export": ("edge.export", ""),
    "BenchResult": ("edge.bench.runner", "BenchResult"),
    "bench": ("edge.bench", ""),
    "predict": ("edge.predict", ""),  # the module is callable: edge.predict(model, images)
}

__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names are resolved lazily
    from edge.bench.runner import BenchResult, bench  # the callable package edge.bench at run time
    from edge.data.scan import scan
    from edge.data.synth import synth
    from edge.errors import EdgeError
    from edge.export.pipeline import export
    from edge.export.report import ExportReport
    from edge.spec import ModelSpec
    from edge.train.config import TrainConfig
    from edge.train.runner import TrainResult, train


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    module, attribute = _API[name]
    imported = importlib.import_module(module)
    return getattr(imported, attribute) if attribute else imported


def __dir__() -> list[str]:
    return sorted(__all__)
