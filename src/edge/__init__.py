"""edge: from a folder of photos to a verified on-device image classifier.

The public Python API; the ``edge`` command line is a thin layer over these functions::

    from edge import synth, train
    synth("data/", classes=5, per_class=60)
    result = train("data/", run_dir="runs/demo", backbone="mobilenet_v2", weights="none")

Importing edge is cheap: TensorFlow is loaded when a function first needs it. The names ``train``
(and later ``export``, ``bench``) are the API functions; their packages are ``edge.train`` etc.
"""

from __future__ import annotations

__version__ = "0.1.0"

from edge.bench import bench  # noqa: E402
from edge.data.scan import scan  # noqa: E402
from edge.data.synth import synth  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.spec import ModelSpec  # noqa: E402
from edge.train import TrainConfig, TrainResult, train  # noqa: E402

from edge.export import export  # noqa: E402

__all__ = ["__version__", "EdgeError", "ModelSpec", "TrainConfig", "TrainResult", "bench", "export", "scan", "synth",
           "train"]
