"""Core ML: Apple's runtime on macOS, edge's MIL reference executor everywhere else.

coremltools' ``predict`` runs only on macOS, so off Apple platforms a ``.mlpackage`` is executed
by ``edge.runtimes.mil``: the ML program's ops lowered to one compiled TensorFlow function (the
NumPy executor stays as the tests' oracle), the ImageType's scale/bias, fp16 rounding after every
op of an fp16 program (the CPU path). Latency off macOS is never reported: the executor's speed
says nothing about Core ML's.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from edge import contract
from edge.errors import EdgeError, one_line
from edge.spec import ModelSpec

MACOS_ENGINE = "Core ML (macOS)"
ON_MACOS = platform.system() == "Darwin"
LATENCY_NOTE = "" if ON_MACOS else "n/a on this OS"  # Core ML latency needs Apple's runtime


def read_metadata(path: Path) -> dict[str, str]:
    """The package's user-defined metadata (edge's key/values), without compiling the model."""
    import coremltools as ct

    path = Path(path)
    if not path.exists():
        raise EdgeError(f"Core ML package {path} does not exist.")
    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:
        raise EdgeError(f"{path} cannot be read as a Core ML model ({one_line(exc)}).") from exc
    return dict(model.user_defined_metadata)


class CoreMLPredictor:
    """uint8 RGB images -> probabilities, in the order of the package's own labels."""

    def __init__(self, path: Path, spec: ModelSpec, engine: str | None = None):
        self.path = Path(path)
        self.spec = spec
        self._use_macos = (engine or ("macos" if ON_MACOS else "mil")) == "macos"
        if self._use_macos:
            import coremltools as ct

            self._model = ct.models.MLModel(str(self.path))
            self.runtime = MACOS_ENGINE
        else:
            from edge.runtimes.mil.executor import ENGINE_NAME, MilExecutor

            self._executor = MilExecutor(self.path)
            self.runtime = getattr(self._executor, "engine_name", ENGINE_NAME)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.uint8)
        if self._use_macos:
            return self._predict_macos(images)
        return self._executor.classify(images, self.spec.labels)

    def _predict_macos(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        rows = []
        for img in images:
            out = self._model.predict({contract.COREML_INPUT: Image.fromarray(img)})
            probs = out[contract.COREML_PROBS_OUTPUT]
            rows.append([probs[label] for label in self.spec.labels])
        return np.asarray(rows, dtype=np.float32)
