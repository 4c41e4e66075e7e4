"""Builds the classifier: raw RGB pixels -> baked-in normalization -> backbone -> softmax head.

The graph is flat (the backbone's layers live directly in the model, not as a nested model), so
quantization-aware training and every converter see plain layers. Layer names that other modules
rely on are constants here.
"""

from __future__ import annotations

from edge import contract
from edge.backbones import Backbone, get_backbone, resolve_weights
from edge.errors import EdgeError, one_line
from edge.spec import Normalization

INPUT_NAME = contract.INPUT_NAME
PREPROCESS_LAYER = contract.PREPROCESS_LAYER
FEATURES_LAYER = "features"
DROPOUT_LAYER = "head_dropout"
LOGITS_LAYER = "logits"
OUTPUT_NAME = contract.OUTPUT_NAME


def build_model(
    backbone_name: str,
    num_classes: int,
    image_size: int | tuple[int, int],
    weights: str = "imagenet",
    alpha: float | None = None,
    dropout: float = 0.2,
):
    """Return ``(model, normalization)`` for a new classifier with an untrained head."""
    from edge.keras_setup import keras, tf

    backbone = get_backbone(backbone_name)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    resolved = resolve_weights(backbone, weights, h, alpha)
    norm = backbone.normalization
    inputs = keras.Input(shape=(h, w, 3), name=INPUT_NAME, dtype="float32")
    x = _normalization_layer(norm)(inputs)
    try:
        base, _ = backbone.build(x, resolved, alpha)
    except EdgeError:
        raise
    except Exception as exc:  # download failures, bad weight files, unsupported sizes
        raise EdgeError(_weights_error(backbone, weights, exc)) from exc
    if resolved and backbone.rgb_first_conv:
        _flip_first_conv_to_rgb(base.get_layer(backbone.rgb_first_conv))
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(base.output)
    x = keras.layers.Dropout(dropout, name=DROPOUT_LAYER)(features)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(x)
    probs = keras.layers.Activation("softmax", dtype=tf.float32, name=OUTPUT_NAME)(logits)
    model = keras.Model(inputs, probs, name=f"edge_{backbone.name}")
    if resolved is None:
        # From scratch: short runs otherwise keep near-initial moving statistics and the model
        # collapses to one class at inference.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    return model, norm


def _normalization_layer(norm: Normalization):
    from edge.keras_setup import keras

    scale, offset = norm.scale, norm.offset
    uniform = len(set(scale)) == 1 and len(set(offset)) == 1
    return keras.layers.Rescaling(
        scale=scale[0] if uniform else list(scale),
        offset=offset[0] if uniform else list(offset),
        name=PREPROCESS_LAYER,
    )


def _flip_first_conv_to_rgb(conv) -> None:
    kernel, *rest = conv.get_weights()
    conv.set_weights([kernel[:, :, ::-1, :], *rest])


def _weights_error(backbone: Backbone, weights: str, exc: Exception) -> str:
    if weights == "imagenet":
        return (
            f"Could not load ImageNet weights for {backbone.name}: the download failed and no cached copy is in "
            f"~/.keras/models or $KERAS_HOME/models; pass --weights PATH to use a local weights file."
        )
    return f"Could not load weights '{weights}' into {backbone.name}: {one_line(exc)}."


def feature_extractor(model):
    """The frozen part of ``model``: raw pixels -> pooled bottleneck features."""
    from edge.keras_setup import keras

    return keras.Model(model.input, model.get_layer(FEATURES_LAYER).output, name="bottleneck")


def head_model(model):
    """The trainable head of ``model`` on cached features; shares its layers (and weights)."""
    from edge.keras_setup import keras

    dim = model.get_layer(FEATURES_LAYER).output.shape[-1]
    feats = keras.Input(shape=(dim,), name="bottleneck_features")
    x = model.get_layer(DROPOUT_LAYER)(feats)
    x = model.get_layer(LOGITS_LAYER)(x)
    out = model.get_layer(OUTPUT_NAME)(x)
    return keras.Model(feats, out, name="head")


def set_trainable(model, backbone_name: str, mode: str, start_layer: str | None = None) -> int:
    """Freeze/unfreeze layers for a training stage; returns the number of trainable weights.

    mode: ``head`` (backbone frozen), ``fine_tune`` (layers from the backbone's
    ``fine_tune_from`` on, or from ``start_layer``; BatchNormalization stays frozen, i.e. in
    inference mode),
    ``all`` (from scratch: everything trains, BatchNormalization included).
    """
    from edge.keras_setup import keras

    head_layers = {DROPOUT_LAYER, LOGITS_LAYER, OUTPUT_NAME, FEATURES_LAYER}
    if mode == "all":
        for layer in model.layers:
            layer.trainable = True
        return len(model.trainable_weights)
    start = None
    if mode == "fine_tune":
        start_name = start_layer or get_backbone(backbone_name).fine_tune_from
        names = [layer.name for layer in model.layers]
        if start_name not in names:
            raise EdgeError(f"Layer '{start_name}' is not in the {backbone_name} model; cannot fine-tune from it.")
        start = names.index(start_name)
    for i, layer in enumerate(model.layers):
        if layer.name in head_layers:
            layer.trainable = True
        elif start is not None and i >= start:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        else:
            layer.trainable = False
    return len(model.trainable_weights)
