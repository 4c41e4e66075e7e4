"""TensorFlow (tf_keras): runs the Keras reference model through one compiled ``tf.function``.

Every exported artifact is verified against this predictor. The same serving function (raw
pixels in, probabilities out, inference mode) is what the TFLite and ONNX converters trace, so
reference and artifacts start from one graph. TensorFlow's thread pool is process-wide and fixed
once it starts, so a thread count is a request honoured only before the first model runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge import contract
from edge.errors import EdgeError, one_line
from edge.runtimes import batched, empty
from edge.spec import ModelSpec

BATCH = 64
INPUT_NAME, OUTPUT_NAME = contract.INPUT_NAME, contract.OUTPUT_NAME


def load_keras(path: Path):
    """Load a tf_keras model saved by ``edge train`` (one sentence on failure)."""
    from edge.keras_setup import keras

    path = Path(path)
    if not path.exists():
        raise EdgeError(f"Model file {path} does not exist.")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # corrupt zip, Keras 3 file, unknown layers
        raise EdgeError(f"Could not load the Keras model {path}: {one_line(exc)}.") from exc


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

    @property
    def threads(self) -> int:
        """TensorFlow's process-wide intra-op thread count."""
        return thread_count()

    def bench_call(self, images: np.ndarray):
        """The engine-only call for latency measurement: the compiled function on a prepared tensor."""
        from edge.keras_setup import tf

        tensor = tf.constant(np.asarray(images, np.float32))
        serve = self._serve
        return lambda: serve(tensor)[OUTPUT_NAME].numpy()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return empty(self.spec)
        out = [self._serve(chunk.astype(np.float32))[OUTPUT_NAME].numpy() for chunk in batched(images, BATCH)]
        return np.concatenate(out).astype(np.float32)


def set_threads(threads: int | None) -> None:
    """Ask TensorFlow for ``threads`` intra-op threads (ignored once its pool has started)."""
    if not threads:
        return
    from edge.keras_setup import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    except RuntimeError:  # TensorFlow already initialised; keep its pool
        pass


def thread_count() -> int:
    """TensorFlow's intra-op thread count (all cores when it chose by itself)."""
    import os

    from edge.keras_setup import tf

    return tf.config.threading.get_intra_op_parallelism_threads() or (os.cpu_count() or 1)
