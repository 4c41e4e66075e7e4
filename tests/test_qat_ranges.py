"""QAT starts from data-calibrated fake-quant ranges (export/remedies/qat.calibrate_ranges) and
quantizes depthwise kernels per channel (quantize_aware_model)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_ranges_start_from_data_and_depthwise_kernels_are_per_channel():
    from edge.export.remedies.qat import calibrate_ranges, quantize_aware_model
    from edge.keras_setup import keras
    from edge.train.model import build_model

    model, _ = build_model("mobilenet_v2", 3, 32, weights="none", alpha=0.35)
    for layer in model.layers:  # activations well beyond tfmot's initial [-6, 6], as in folded-BN ImageNet weights
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, *rest = layer.get_weights()
            layer.set_weights([gamma * 8.0, *rest])
    images = np.random.default_rng(0).uniform(0, 255, (40, 32, 32, 3)).astype(np.uint8)
    depthwise_layer = model.get_layer("block_1_depthwise")  # channel ranges 100x apart, as with folded batch norm
    kernel, *rest = depthwise_layer.get_weights()
    kernel[:, :, 1::2, :] *= 0.01
    depthwise_layer.set_weights([kernel, *rest])
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
    # depthwise kernels (h, w, channels, 1): one range per channel, not one per tensor (tfmot's own)
    depthwise = model.get_layer("block_1_depthwise").get_weights()[0]
    ranges = next(v for v in qat.get_layer("quant_block_1_depthwise").non_trainable_weights
                  if "depthwise_kernel_max" in v.name).numpy()
    assert ranges.shape == (depthwise.shape[2],)
    np.testing.assert_allclose(ranges, np.abs(depthwise).max(axis=(0, 1, 3)), rtol=1e-5)

    wrapper = qat.get_layer("quant_block_1_depthwise")
    (weight, quantizer, variables), = wrapper._weight_vars
    fake = quantizer(weight, training=False, weights=variables).numpy()
    small = np.abs(depthwise[:, :, 1::2, :])
    # per tensor the small channels' weights would fall below half a quantization step: most would vanish
    assert np.abs(fake[:, :, 1::2, :] - depthwise[:, :, 1::2, :]).max() <= small.max(axis=(0, 1, 3)).max() / 127 / 2 + 1e-7
    assert np.count_nonzero(fake[:, :, 1::2, :]) >= 0.9 * np.count_nonzero(depthwise[:, :, 1::2, :])
