"""The Keras format: ``model.keras`` as edge train wrote it -- the reference, not an export target.

Every artifact is verified against it; ``edge bench`` and ``edge predict`` accept it like any
other model. It runs on TensorFlow (``edge.runtimes.tensorflow``); its spec is the ``spec.json``
beside it.
"""

from __future__ import annotations

from pathlib import Path

from edge import contract
from edge.errors import EdgeError
from edge.formats import FP32_BUDGET, Format
from edge.runtimes import tensorflow as runtime
from edge.spec import SPEC_FILE, ModelSpec


def read_metadata(path: Path) -> dict[str, str]:
    """The spec beside the model, as the key/values an exported artifact would carry ({} if none)."""
    spec = Path(path).parent / SPEC_FILE
    if not spec.is_file():
        return {}
    return {contract.KEY_SPEC: spec.read_text(encoding="utf-8")}


def load(path: Path, threads: int | None = None) -> runtime.KerasPredictor:
    """A Predictor for a ``.keras`` model; the spec is the ``spec.json`` beside it."""
    path = Path(path)
    spec_path = path.parent / SPEC_FILE
    if not spec_path.is_file():
        raise EdgeError(f"No {SPEC_FILE} next to {path}; a .keras model needs the spec written by edge train.")
    runtime.set_threads(threads)
    return runtime.KerasPredictor(runtime.load_keras(path), ModelSpec.load(spec_path))


FORMAT = Format(
    name="keras",
    display_name="Keras",
    suffix=".keras",
    quantize_kinds=("fp32",),
    default_quantize=("fp32",),
    export=None,  # the reference every artifact is compared with
    load=load,
    read_metadata=read_metadata,
    budgets={"fp32": FP32_BUDGET},
    verified_by="",
    runtime="tensorflow",
    needs_calibration=(),
    per_load_threads=False,
    thread_note="TensorFlow's thread pool is fixed once it starts, so the Keras model has one row in the thread sweep",
)
