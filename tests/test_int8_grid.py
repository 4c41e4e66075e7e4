"""edge.train.int8_grid: straight-through training on int8-rounded kernels, and the final rounding
(the fine-tuned model then has exactly the weights its int8 file gets; end to end in
test_train_views.py)."""

from __future__ import annotations

import numpy as np


def test_training_sees_rounded_kernels_moves_the_latent_ones_and_ends_on_the_grid():
    from edge.keras_setup import keras
    from edge.train.int8_grid import Int8Grid, kernels, rounded, snap

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.DepthwiseConv2D(3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    model.layers[0].trainable = False  # frozen: not rounded, not touched
    frozen = model.layers[0].kernel.numpy().copy()
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    found = kernels(model)
    assert [axis for _, axis in found] == [2, 1]  # depthwise (h, w, channels, 1), dense (in, out)
    before = [variable.numpy().copy() for variable, _ in found]
    seen = []

    class Spy(keras.callbacks.Callback):  # after Int8Grid's batch-begin: what the train step computes with
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(all(np.allclose(v.numpy(), rounded(v, a).numpy(), rtol=0, atol=1e-7) for v, a in found))

    x = np.random.default_rng(0).random((64, 8, 8, 3), np.float32)
    y = np.random.default_rng(1).integers(0, 3, 64)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[Int8Grid(model), Spy()])
    assert len(seen) == 12 and all(seen)
    latent = [variable.numpy().copy() for variable, _ in found]
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(latent, before))  # Adam's steps reached the kernels
    assert not any(np.allclose(k, rounded(k, a).numpy(), rtol=0, atol=1e-5) for k, (_, a) in zip(latent, found))
    assert snap(model) == 2
    for (variable, axis), kernel in zip(found, latent):
        on_grid = variable.numpy()
        assert np.allclose(on_grid, rounded(on_grid, axis).numpy(), rtol=0, atol=1e-7)  # rounding again: the same
        scale = np.abs(kernel).max(axis=tuple(i for i in range(kernel.ndim) if i != axis), keepdims=True) / 127
        assert np.abs(on_grid - kernel).max() <= scale.max() / 2 + 1e-7  # the nearest grid value
        steps = on_grid / scale
        assert np.allclose(steps, np.round(steps), atol=1e-4) and np.abs(steps).max() <= 127 + 1e-4
    assert np.array_equal(model.layers[0].kernel.numpy(), frozen)


def test_rounding_keeps_an_all_zero_channel():
    from edge.train.int8_grid import rounded

    kernel = np.zeros((1, 1, 2, 3), np.float32)
    kernel[..., 1] = [1.27, -0.643]  # scale 0.01: 127 and -64.3 steps
    out = rounded(kernel, 3).numpy()
    assert np.array_equal(out[..., 0], np.zeros((1, 1, 2))) and np.allclose(out[..., 1], [1.27, -0.64], atol=1e-6)
