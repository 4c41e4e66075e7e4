"""The Keras reference: loads ``model.keras`` and runs it through a compiled ``tf.function``.

Every exported artifact is verified against this predictor. The same serving function (raw
pixels in, probabilities out, inference mode) is what the TFLite and ONNX converters trace, so
reference and artifacts start from one graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.export.base import FP32_BUDGET, Artifact, Format, batched, path_size
from edge.spec import SPEC_FILE, ModelSpec

BATCH = 64
INPUT_NAME = "image"  # edge.train.model.INPUT_NAME
OUTPUT_NAME = "probabilities"  # edge.train.model.OUTPUT_NAME


def load_keras(path: Path):
    """Load a tf_keras model saved by ``edge train`` (one sentence on failure)."""
    from edge.keras_setup import keras

    path = Path(path)
    if not path.exists():
        raise EdgeError(f"Model file {path} does not exist.")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # corrupt zip, Keras 3 file, unknown layers
        raise EdgeError(f"Could not load the Keras model {path}: {str(exc).splitlines()[0][:160]}.") from exc


def serving_function(model, input_dtype: str = "float32"):
    """``tf.function`` from raw RGB pixels (N, H, W, 3) to ``{"probabilities": (N, C)}``, inference mode."""
    from edge.keras_setup import tf

    h, w = model.input_shape[1:3]
    dtype = tf.as_dtype(input_dtype)

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], dtype, name=INPUT_NAME)], autograph=False)
    def serve(image):
        return {OUTPUT_NAME: model(tf.cast(image, tf.float32), training=False)}

    return serve


def variables_holder(model):
    """A bare ``tf.Module`` owning ``model``'s variables.

    TFLite's converter saves its ``trackable_obj`` as a SavedModel; handing it the Keras model
    itself makes it trace every layer (about 5x slower) for nothing.
    """
    from edge.keras_setup import tf

    holder = tf.Module()
    holder.model_variables = list(model.variables)
    return holder


class KerasPredictor:
    """Predictor for a tf_keras model (the verification reference)."""

    def __init__(self, model, spec: ModelSpec):
        from edge.keras_setup import tf

        self.model = model
        self.spec = spec
        self.runtime = f"TensorFlow {tf.__version__} (tf_keras)"
        self._serve = serving_function(model, "float32")

    def bench_call(self, images: np.ndarray):
        """The engine-only call for latency measurement: the compiled function on a prepared tensor."""
        from edge.keras_setup import tf

        tensor = tf.constant(np.asarray(images, np.float32))
        serve = self._serve
        return lambda: serve(tensor)[OUTPUT_NAME].numpy()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return np.zeros((0, self.spec.num_classes), np.float32)
        out = [self._serve(chunk.astype(np.float32))[OUTPUT_NAME].numpy() for chunk in batched(images, BATCH)]
        return np.concatenate(out).astype(np.float32)


def load(path: Path, threads: int | None = None) -> KerasPredictor:
    """A Predictor for ``model.keras``; the spec is the ``spec.json`` beside it."""
    path = Path(path)
    spec_path = path.parent / SPEC_FILE
    if not spec_path.is_file():
        raise EdgeError(f"No {SPEC_FILE} next to {path}; a .keras model needs its spec beside it.")
    if threads:
        from edge.keras_setup import tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        except RuntimeError:  # TensorFlow already initialised; keep its pool
            pass
    return KerasPredictor(load_keras(path), ModelSpec.load(spec_path))


def export(model, spec: ModelSpec, quantize: str, out_path: Path, calibration=None, options=None) -> Artifact:
    """Save the model as ``.keras`` (the reference itself; fp32 only)."""
    if quantize != "fp32":
        raise EdgeError(f"The keras format has no '{quantize}' quantization (fp32 only).")
    model.save(out_path)
    return Artifact(Path(out_path), "keras", "fp32", path_size(out_path))


FORMAT = Format(
    name="keras",
    suffix=".keras",
    quantize_kinds=("fp32",),
    default_quantize=("fp32",),
    export=export,
    load=load,
    budgets={"fp32": FP32_BUDGET},
    verified_by="",
    needs_calibration=(),
)
