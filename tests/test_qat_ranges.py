"""QAT starts from data-calibrated fake-quant ranges (export/remedies/qat.calibrate_ranges)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_activation_ranges_are_the_float_layers_observed_ranges():
    from edge.export.remedies.qat import calibrate_ranges, quantize_aware_model
    from edge.keras_setup import keras
    from edge.train.model import build_model

    model, _ = build_model("mobilenet_v2", 3, 32, weights="none", alpha=0.35)
    for layer in model.layers:  # activations well beyond tfmot's initial [-6, 6], as in folded-BN ImageNet weights
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, *rest = layer.get_weights()
            layer.set_weights([gamma * 8.0, *rest])
    images = np.random.default_rng(0).uniform(0, 255, (40, 32, 32, 3)).astype(np.uint8)
    x = images.astype(np.float32)

    def pooled(net):  # the features the head sees
        return keras.Model(net.input, net.get_layer(net.layers[-4].name).output)(x).numpy()

    before = pooled(quantize_aware_model(model))
    qat = quantize_aware_model(model)
    count = calibrate_ranges(qat, model, images)
    assert count > 30  # every ReLU, linear bottleneck, add, pooling and the logits

    checked = 0
    for wrapper in qat.layers:
        ranges = {v.name.split("/")[-1].split(":")[0]: v.numpy() for v in wrapper.non_trainable_weights}
        if "output_min" not in ranges:
            continue
        out = keras.Model(model.input, model.get_layer(wrapper.layer.name).output)(images.astype(np.float32)).numpy()
        np.testing.assert_allclose(ranges["output_min"], min(out.min(), 0.0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ranges["output_max"], max(out.max(), 0.0), rtol=1e-5, atol=1e-6)
        checked += 1
    assert checked >= 30
    kernel = next(v for v in qat.get_layer("quant_Conv1").non_trainable_weights if "kernel_max" in v.name).numpy()
    weights = model.get_layer("Conv1").get_weights()[0]
    np.testing.assert_allclose(kernel, np.abs(weights).reshape(-1, weights.shape[-1]).max(0), rtol=1e-5)  # not 6

    exact = keras.Model(model.input, model.get_layer("features").output)(x).numpy()
    assert qat.layers[-4].layer.name == "features"
    after = pooled(qat)
    assert np.abs(after - exact).mean() < 0.85 * np.abs(before - exact).mean()  # closer to the float model (measured 0.72x)
