"""Where training runs: distribution strategy and mixed precision.

* several GPUs -> ``MirroredStrategy`` over all of them; ``TF_CONFIG`` with a cluster of more than
  one worker -> ``MultiWorkerMirroredStrategy``; one GPU -> that GPU; otherwise the CPU.
* ``cpu:N`` splits the CPU into N logical devices and mirrors across them: the same multi-replica
  code path as multi-GPU, runnable on any machine (that is how the tests exercise it).
* Mixed precision (float16 compute, float32 variables and outputs) is on by default on GPUs with
  compute capability >= 7.0 and off on CPUs, where it is slower.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from edge.errors import EdgeError


@dataclass
class Placement:
    strategy: object
    description: str
    replicas: int
    mixed_precision: bool


def _multi_worker_cluster() -> bool:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as exc:
        raise EdgeError(f"TF_CONFIG is not valid JSON ({exc.msg}).") from None
    return sum(len(v) for k, v in cluster.items() if k in ("worker", "chief")) > 1


def choose_placement(devices: str = "auto", mixed_precision: str = "auto") -> Placement:
    from edge.keras_setup import tf

    devices = (devices or "auto").lower()
    if devices.startswith("cpu:"):
        try:
            n = int(devices.split(":", 1)[1])
        except ValueError:
            raise EdgeError(f"--devices '{devices}' should be cpu:N with N a number.") from None
        _split_cpu(n)
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
        strategy = tf.distribute.MirroredStrategy(names, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return _with_precision(Placement(strategy, f"MirroredStrategy over {n} logical CPUs", n, False), mixed_precision)

    gpus = tf.config.list_physical_devices("GPU") if devices in ("auto", "gpu") else []
    if devices == "gpu" and not gpus:
        raise EdgeError("--devices gpu was requested but TensorFlow sees no GPU.")
    if devices == "auto" and _multi_worker_cluster():
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        placement = Placement(strategy, "MultiWorkerMirroredStrategy (TF_CONFIG)", strategy.num_replicas_in_sync, bool(gpus))
    elif len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        placement = Placement(strategy, f"MirroredStrategy over {len(gpus)} GPUs", len(gpus), True)
    elif len(gpus) == 1:
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
        placement = Placement(strategy, "1 GPU", 1, True)
    else:
        placement = Placement(tf.distribute.get_strategy(), f"CPU ({os.cpu_count()} cores)", 1, False)
    return _with_precision(placement, mixed_precision, gpus)


def _with_precision(placement: Placement, mode: str, gpus=()) -> Placement:
    from edge.keras_setup import keras, tf

    if mode == "on":
        use = True
    elif mode == "off":
        use = False
    else:  # auto: only where float16 units make it faster
        use = placement.mixed_precision and all(
            (tf.config.experimental.get_device_details(g).get("compute_capability") or (0, 0)) >= (7, 0) for g in gpus
        )
    keras.mixed_precision.set_global_policy("mixed_float16" if use else "float32")
    placement.mixed_precision = use
    if use:
        placement.description += ", mixed float16"
    return placement


def _split_cpu(n: int) -> None:
    from edge.keras_setup import tf

    if n < 1:
        raise EdgeError("--devices cpu:N needs N >= 1.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        raise EdgeError(
            f"Cannot split the CPU into {n} logical devices after TensorFlow has started; use a new process."
        ) from None
