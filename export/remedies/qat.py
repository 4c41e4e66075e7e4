"""Quantization-aware training (``--qat``): fine-tune with fake-quant nodes, then export full int8.

tensorflow-model-optimization works on tf_keras only, which is what edge runs on everywhere
(``edge.keras_setup``), so importing it here cannot switch the other converters' Keras. It is the
``qat`` remedy: the one ``--int8-auto`` tries after the post-training ones that keep the file
int8 and before the float fallback, and the way ``--qat`` makes int8 directly. The
model is already a flat functional graph; every layer is annotated except the ``preprocess``
Rescaling layer, which tfmot does not support (it stays float and is calibrated by the
representative set). Two departures from tfmot's defaults make QAT work on real pretrained
weights: depthwise kernels are quantized per channel (``_depthwise_classes``) and every fake-quant
range starts from data (``calibrate_ranges``); without them the QAT copy of a fine-tuned ImageNet
MobileNetV2 started at 21% top-1 where the float model has 92%. A copy of the model is trained;
the source model is never touched.
"""

from __future__ import annotations

import time

import numpy as np

from edge import contract
from edge.errors import EdgeError, one_line
from edge.export.gate import ExportContext, export_one
from edge.export.remedies.base import INT8, Remedy
from edge.export.report import Entry
from edge.formats import Format

PREPROCESS_LAYER = contract.PREPROCESS_LAYER
LEARNING_RATE = 1e-5
BATCH = 16
DEFAULT_EPOCHS = 2
MAX_TRAIN_IMAGES = 2000


def _depthwise_classes():
    """A QuantizeConfig that quantizes depthwise kernels per channel, as TFLite's post-training int8
    does. tfmot's own takes the per-axis ranges along the kernel's last axis, which for a depthwise
    kernel (h, w, channels, 1) has size 1: one range per tensor (tensorflow/model-optimization issue
    808). With folded batch norm (the shared ImageNet MobileNetV2) channel ranges differ by 100x,
    and one range per tensor costs the QAT model most of its accuracy."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_configs as configs,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantizers as quantizers,
    )

    from edge.keras_setup import keras, tf

    class DepthwisePerChannelQuantizer(quantizers.Default8BitConvWeightsQuantizer):
        def build(self, tensor_shape, name, layer):
            shape = (tensor_shape[-2],)  # one range per channel
            return {"min_var": layer.add_weight(name + "_min", shape=shape, trainable=False,
                                                initializer=keras.initializers.Constant(-6.0)),
                    "max_var": layer.add_weight(name + "_max", shape=shape, trainable=False,
                                                initializer=keras.initializers.Constant(6.0))}

        def __call__(self, inputs, training, weights, **kwargs):
            channels_last = tf.transpose(inputs, (0, 1, 3, 2))  # (h, w, 1, channels): per axis = per channel
            quantized = super().__call__(channels_last, training, weights, **kwargs)
            return tf.transpose(quantized, (0, 1, 3, 2))

    class DepthwisePerChannelConfig(registry.Default8BitConvQuantizeConfig):
        def __init__(self, weight_attrs=("depthwise_kernel",), activation_attrs=(), quantize_output=False):
            super().__init__(list(weight_attrs), list(activation_attrs), quantize_output)
            self.weight_quantizer = DepthwisePerChannelQuantizer()

        def get_config(self):
            return {}

    return DepthwisePerChannelConfig, configs.Default8BitOutputQuantizeConfig, {
        "DepthwisePerChannelConfig": DepthwisePerChannelConfig,
        "DepthwisePerChannelQuantizer": DepthwisePerChannelQuantizer,
    }


def quantize_aware_model(model):
    """An annotated, fake-quantized copy of ``model`` with its weights (not yet trained)."""
    import tensorflow_model_optimization as tfmot

    from edge.keras_setup import keras

    annotate = tfmot.quantization.keras.quantize_annotate_layer
    depthwise_config, output_config, custom = _depthwise_classes()
    after_depthwise = {node.outbound_layer.name for layer in model.layers
                       if isinstance(layer, keras.layers.DepthwiseConv2D) for node in layer._outbound_nodes
                       if isinstance(node.outbound_layer, keras.layers.BatchNormalization)}

    def clone(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Rescaling)) or layer.name == PREPROCESS_LAYER:
            return fresh
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return annotate(fresh, quantize_config=depthwise_config())
        if layer.name in after_depthwise:  # what tfmot's conv + batch-norm transform would give it
            return annotate(fresh, quantize_config=output_config())
        return annotate(fresh)

    try:
        annotated = keras.models.clone_model(model, clone_function=clone)
        annotated.set_weights(model.get_weights())
        with tfmot.quantization.keras.quantize_scope(custom):
            return tfmot.quantization.keras.quantize_apply(annotated)
    except Exception as exc:  # an unsupported layer names itself in tfmot's message
        raise EdgeError(f"Quantization-aware training cannot wrap this model: {one_line(exc)}.") from exc


RANGE_SUFFIXES = ("output", "post_activation")  # tfmot's activation range variables: <suffix>_min / <suffix>_max
RANGE_MINS = tuple(f"{suffix}_min" for suffix in RANGE_SUFFIXES)
RANGE_MAXS = tuple(f"{suffix}_max" for suffix in RANGE_SUFFIXES)
CALIBRATION_IMAGES = 256


def calibrate_ranges(qat_model, model, images: np.ndarray) -> int:
    """Start every fake-quant range where post-training quantization would: from the data.

    tfmot starts each activation range at [-6, 6] and moves it by an exponential moving average
    (decay 0.999) during training, and each weight range at [-6, 6] until the first training step.
    A few epochs on a small training split barely move them: activations beyond 6 (MobileNetV2's
    linear bottlenecks) stay clipped and a ReLU's [0, 6] wastes half the int8 steps, so the QAT
    model starts far below the float one (measured: 21% instead of 92% top-1 on real photos) and
    does not recover. Here one training-mode step sets the weight ranges from the weights (tfmot's
    last-value quantizer), and each activation range is set to the min/max of that layer's float
    output over up to CALIBRATION_IMAGES of ``images`` (including 0, as TFLite's calibration does).
    Returns the number of activation ranges set. (With depthwise kernels per channel too,
    ``quantize_aware_model``, the untrained QAT model of that run reaches 90%.)
    """
    from edge.keras_setup import keras, tf

    wrappers, layers = [], []
    for wrapper in qat_model.layers:
        if any(_short_name(v) in RANGE_MINS for v in wrapper.non_trainable_weights):
            wrappers.append(wrapper)
            layers.append(model.get_layer(wrapper.layer.name))
    chosen = images[:CALIBRATION_IMAGES].astype(np.float32)
    qat_model(chosen[:BATCH], training=True)  # weight ranges from the weights (BatchNormalization stays frozen)
    probe = keras.Model(model.input, [layer.output for layer in layers])
    low = np.full(len(layers), np.inf)
    high = np.full(len(layers), -np.inf)
    for start in range(0, len(chosen), 32):
        outputs = probe(chosen[start:start + 32], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        low = np.minimum(low, [float(tf.reduce_min(o)) for o in outputs])
        high = np.maximum(high, [float(tf.reduce_max(o)) for o in outputs])
    for wrapper, lo, hi in zip(wrappers, low, high):
        for var in wrapper.non_trainable_weights:
            name = _short_name(var)
            if name in RANGE_MINS:
                var.assign(tf.fill(var.shape, tf.constant(min(lo, 0.0), var.dtype)))
            elif name in RANGE_MAXS:
                var.assign(tf.fill(var.shape, tf.constant(max(hi, 0.0), var.dtype)))
    return len(wrappers)


def _short_name(variable) -> str:
    """``quant_block_1_add/output_min:0`` -> ``output_min``."""
    return variable.name.split("/")[-1].split(":")[0]


def train_qat(model, images: np.ndarray, labels: np.ndarray, epochs: int = DEFAULT_EPOCHS, seed: int = 0):
    """Fine-tune a QAT copy of ``model`` on uint8 ``images`` with integer ``labels``; returns it."""
    from edge.keras_setup import keras, tf

    if len(images) == 0:
        raise EdgeError("Quantization-aware training needs the run's training split.")
    tf.random.set_seed(seed)
    qat_model = quantize_aware_model(model)
    calibrate_ranges(qat_model, model, images)
    qat_model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                      loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    qat_model.fit(images.astype(np.float32), labels, batch_size=BATCH, epochs=max(1, int(epochs)), shuffle=True,
                  verbose=0)
    return qat_model


def training_set(ctx: ExportContext) -> tuple[np.ndarray, np.ndarray]:
    """The run's training split (at most MAX_TRAIN_IMAGES, class-balanced) as uint8 images + labels."""
    from edge.data.images import load_images
    from edge.export.calibration import pick

    run = ctx.source.run
    samples = run.samples("train") if run is not None else []
    if not samples:
        raise EdgeError("--qat needs a run directory with a training split (a bare .keras file has none).")
    chosen = pick(samples, MAX_TRAIN_IMAGES, ctx.spec.seed)
    images = load_images([s.path for s in chosen], ctx.spec.input_size, ctx.spec.resize_filter)
    return images, np.array([s.label for s in chosen], int)


def attempt(ctx: ExportContext, fmt: Format) -> Entry:
    """QAT fine-tune a copy of the model, export int8 with ``fmt`` and verify it (not finalized)."""
    start = time.perf_counter()
    images, labels = training_set(ctx)
    qat_model = train_qat(ctx.model, images, labels, ctx.qat_epochs, ctx.spec.seed)
    train_seconds = time.perf_counter() - start
    entry = export_one(ctx, fmt, INT8, model=qat_model, finalize=False)
    entry.details.update(method="qat", qat_epochs=int(ctx.qat_epochs), qat_train_images=int(len(images)),
                         qat_train_seconds=round(train_seconds, 1))
    entry.export_seconds += train_seconds
    return entry


REMEDY = Remedy("qat", lambda ctx: "quantization-aware training", attempt)
