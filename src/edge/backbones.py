"""Backbone registry: one entry per supported keras.applications network.

Each entry knows its constructor, default input size, the normalization its pretrained weights
expect, the first layer that is safe to unfreeze for fine-tuning, and the file name Keras caches
its ImageNet weights under. Adding a backbone is adding one entry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.spec import Normalization

MINUS_ONE_TO_ONE = Normalization(mean=(127.5,) * 3, std=(127.5,) * 3)
# Caffe-style ImageNet mean subtraction (ResNet50). The weights expect BGR; edge permutes the first
# convolution's input channels instead, so the model still takes RGB.
CAFFE_RGB_MEAN = Normalization(mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0))
# The network normalizes internally (EfficientNet's own Rescaling + Normalization layers).
IDENTITY = Normalization(mean=(0.0,) * 3, std=(1.0,) * 3)


@dataclass(frozen=True)
class Backbone:
    name: str
    constructor: str  # attribute of keras.applications
    default_size: int
    normalization: Normalization
    fine_tune_from: str  # first layer unfrozen by fine-tuning (everything after it too)
    weights_file: Callable[[int, float], str]  # (size, alpha) -> ImageNet no-top file name
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    has_alpha: bool = False
    rgb_first_conv: str | None = None  # conv whose input channels are flipped BGR->RGB

    def build(self, input_tensor, weights: str | None, alpha: float | None):
        """Build the headless backbone on ``input_tensor`` with the given weights."""
        from edge.keras_setup import keras

        ctor = getattr(keras.applications, self.constructor)
        kwargs = dict(self.extra_kwargs)
        if self.has_alpha and alpha is not None:
            kwargs["alpha"] = alpha
        size = int(input_tensor.shape[1])
        return ctor(input_tensor=input_tensor, include_top=False, weights=weights, **kwargs), size


def _mnv2_file(size: int, alpha: float) -> str:
    # Built on an input tensor (as edge does), Keras loads the 224 file whatever the input size.
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{_alpha_str(alpha)}_224_no_top.h5"


def _mnv3_file(kind: str) -> Callable[[int, float], str]:
    return lambda size, alpha: f"weights_mobilenet_v3_{kind}_224_{_alpha_str(alpha)}_float_no_top_v2.h5"


def _alpha_str(alpha: float) -> str:
    return str(float(alpha))  # Keras' own naming: 1.0, 0.75, 0.35, ...


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone(
            "mobilenet_v2", "MobileNetV2", 224, MINUS_ONE_TO_ONE, "block_14_expand", _mnv2_file,
            has_alpha=True,
        ),
        Backbone(
            "mobilenet_v3_small", "MobileNetV3Small", 224, MINUS_ONE_TO_ONE, "expanded_conv_9/expand",
            _mnv3_file("small"), extra_kwargs={"include_preprocessing": False}, has_alpha=True,
        ),
        Backbone(
            "mobilenet_v3_large", "MobileNetV3Large", 224, MINUS_ONE_TO_ONE, "expanded_conv_12/expand",
            _mnv3_file("large"), extra_kwargs={"include_preprocessing": False}, has_alpha=True,
        ),
        Backbone(
            "efficientnet_b0", "EfficientNetB0", 224, IDENTITY, "block6a_expand_conv",
            lambda size, alpha: "efficientnetb0_notop.h5",
        ),
        Backbone(
            "resnet50", "ResNet50", 224, CAFFE_RGB_MEAN, "conv5_block1_1_conv",
            lambda size, alpha: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            rgb_first_conv="conv1_conv",
        ),
        Backbone(
            "inception_v3", "InceptionV3", 299, MINUS_ONE_TO_ONE, "mixed9",
            lambda size, alpha: "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
    ]
}

DEFAULT_BACKBONE = "mobilenet_v2"


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise EdgeError(f"Unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}.") from None


def resolve_weights(backbone: Backbone, weights: str, size: int, alpha: float | None) -> str | None:
    """Turn the user's ``--weights`` (imagenet | none | PATH) into what keras.applications takes.

    ``imagenet`` prefers a file already in ``$KERAS_HOME/models`` or ``~/.keras/models`` (tf_keras
    itself looks only in the latter) and otherwise lets Keras download it.
    """
    if weights in ("none", "", None):
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EdgeError(f"Weights file {path} does not exist.")
        return str(path)
    file_name = backbone.weights_file(size, alpha if alpha is not None else 1.0)
    homes = [os.environ.get("KERAS_HOME"), str(Path.home() / ".keras")]
    for home in filter(None, homes):
        candidate = Path(home) / "models" / file_name
        if candidate.is_file():
            return str(candidate)
    return "imagenet"
