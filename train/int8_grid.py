"""Fine-tuning whose kernels end on their int8 grid, so the int8 file has the float model's weights.

Post-training int8 (TFLite, per output channel, symmetric: ``scale = max |w| / 127``) rounds every
kernel to its grid. The shared ImageNet MobileNetV2 kernels already lie on it (they come from an
int8 model; ``benchmarks/scripts/int8_grid.py``), so only the fine-tuned layers are rounded, and
on flowers-mini that rounding alone changed as many answers as the whole int8 conversion: the int8
file agreed with the float model with its kernels rounded on 99.6% of photos, with the float model
itself on 97.8% (``benchmarks/results/int8_grid.md``).

``Int8Grid`` trains with the straight-through estimator: before each training batch every trainable
kernel is replaced by its rounded value (the forward and backward passes see the int8 weights), and
after the optimizer's step the change is applied to the unrounded ("latent") kernel, which is what
the variables hold between batches (so per-epoch checkpoints and a resumed run keep the latent
weights; the per-epoch validation sees them too). ``snap`` rounds the kernels once training ends:
the float model then has exactly the weights its int8 file gets, and its answers differ from the
int8 file's only through activations. Batch norm folded into a kernel scales each output channel,
which leaves its grid steps as they are.
"""

from __future__ import annotations

from edge.keras_setup import keras, tf

STEPS = 127.0  # symmetric int8: -127..127 (TFLite's weight range)


def kernels(model) -> list[tuple[tf.Variable, int]]:
    """The trainable kernels of ``model`` with their output-channel axis (convolutions, depthwise
    convolutions, dense layers; what post-training int8 quantizes per channel)."""
    found = []
    for layer in model.layers:
        if not layer.trainable:
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            found.append((layer.depthwise_kernel, 2))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            found.append((layer.kernel, len(layer.kernel.shape) - 1))
    return found


def rounded(kernel, axis: int):
    """``kernel`` rounded to its per-channel symmetric int8 grid (scale = max |w| / 127 per channel)."""
    kernel = tf.convert_to_tensor(kernel)
    others = [i for i in range(kernel.shape.rank) if i != axis]
    scale = tf.reduce_max(tf.abs(kernel), axis=others, keepdims=True) / STEPS
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return tf.round(kernel / scale) * scale


def snap(model) -> int:
    """Round every trainable kernel of ``model`` to its grid; returns how many."""
    found = kernels(model)
    for variable, axis in found:
        variable.assign(rounded(variable, axis))
    return len(found)


class Int8Grid(keras.callbacks.Callback):
    """Straight-through training on int8-rounded kernels (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.found = kernels(model)
        self.latent = [tf.Variable(variable.read_value(), trainable=False) for variable, _ in self.found]
        self.grid = [tf.Variable(variable.read_value(), trainable=False) for variable, _ in self.found]
        self._begin = tf.function(self._round_in)
        self._end = tf.function(self._step_to_latent)

    def _round_in(self):
        for (variable, axis), latent, grid in zip(self.found, self.latent, self.grid):
            latent.assign(variable)
            grid.assign(rounded(variable, axis))
            variable.assign(grid)

    def _step_to_latent(self):
        for (variable, _), latent, grid in zip(self.found, self.latent, self.grid):
            variable.assign(latent + (variable - grid))  # the optimizer's step, applied to the latent kernel

    def on_train_batch_begin(self, batch, logs=None):
        self._begin()

    def on_train_batch_end(self, batch, logs=None):
        self._end()
