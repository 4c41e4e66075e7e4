"""The one place that chooses the Keras implementation for the whole pipeline.

edge runs on **tf_keras (Keras 2)**, not the Keras 3 that TensorFlow 2.16+ ships:

* tensorflow-model-optimization (quantization-aware training, pruning) works only with tf_keras;
  importing it flips the process to tf_keras anyway, so mixing both Kerases in one process breaks.
* tf2onnx and coremltools convert tf_keras models reliably; with Keras 3, coremltools rejects
  SavedModels with two signatures and TFLite conversion from a concrete function can output NaN.

Every edge module imports TensorFlow and Keras from here, never directly, so the environment
variable is set before TensorFlow is first imported.
"""

from __future__ import annotations

import os

from edge import logs

os.environ["TF_USE_LEGACY_KERAS"] = "1"
logs.setup_env()  # TF_CPP_MIN_LOG_LEVEL before TensorFlow reads it (-v/--verbose: everything)

with logs.native_stderr_quiet():  # the absl lines TensorFlow writes while loading ignore that level
    import tensorflow as tf
    import tf_keras as keras

if not logs.is_verbose():
    tf.get_logger().setLevel("ERROR")

__all__ = ["keras", "tf"]
