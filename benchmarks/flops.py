"""The compute floor: a model's FLOPs and this CPU's sustained fp32 matrix-multiply FLOP/s.

``model_flops`` counts the multiply-accumulates of the convolution, depthwise convolution and
dense layers of a tf_keras model (2 FLOPs per MAC; batch norm, activations and pooling are left
out: they are memory-bound and small). ``matmul_flops`` times ``tf.linalg.matmul`` on square
fp32 matrices in a fresh Python process per thread count (TensorFlow's thread pool is fixed once
it starts). ``floor_ms = flops / peak``: no fp32 kernel on this CPU can run the model faster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np


def model_flops(model) -> int:
    """FLOPs of one forward pass (batch 1) of a tf_keras model: 2 x MACs of conv/depthwise/dense."""
    from edge.keras_setup import keras

    layers = keras.layers
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, layers.DepthwiseConv2D):
            out = layer.output_shape
            kh, kw = layer.kernel_size
            total += int(np.prod(out[1:])) * kh * kw
        elif isinstance(layer, (layers.Conv2D,)):  # SeparableConv2D is a Conv2D subclass: count both parts
            out = layer.output_shape
            kh, kw = layer.kernel_size
            cin = int(layer.input_shape[-1]) // max(1, int(getattr(layer, "groups", 1)))
            if isinstance(layer, layers.SeparableConv2D):
                total += int(np.prod(out[1:3])) * int(layer.input_shape[-1]) * (kh * kw * int(layer.depth_multiplier) + int(out[-1]) * int(layer.depth_multiplier))
            else:
                total += int(np.prod(out[1:])) * kh * kw * cin
        elif isinstance(layer, layers.Dense):
            total += int(layer.input_shape[-1]) * int(layer.units)
    return 2 * total


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _all_layers(layer)
        else:
            yield layer


_MATMUL_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
threads, size, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
a = tf.random.normal([size, size], dtype=tf.float32)
b = tf.random.normal([size, size], dtype=tf.float32)
mm = tf.function(lambda x, y: tf.linalg.matmul(x, y))
for _ in range(3):
    mm(a, b).numpy()
rates, start = [], time.perf_counter()
while time.perf_counter() - start < seconds or len(rates) < 5:
    t0 = time.perf_counter(); mm(a, b).numpy(); dt = time.perf_counter() - t0
    rates.append(2.0 * size ** 3 / dt)
rates.sort()
print(json.dumps({"flops_per_s": rates[len(rates) // 2], "best_flops_per_s": rates[-1], "threads": threads,
                  "size": size, "reps": len(rates)}))
"""


def matmul_flops(threads: int, size: int = 1024, seconds: float = 3.0) -> dict:
    """Sustained fp32 FLOP/s (median over ``seconds`` of back-to-back ``size``x``size`` matmuls) and the best rep."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", _MATMUL_SCRIPT, str(int(threads)), str(int(size)), str(seconds)],
                          capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"matmul microbenchmark failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
