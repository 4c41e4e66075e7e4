"""The fine-tuning learning-rate schedules (TrainConfig.fine_tune_schedule).

``cosine`` (the default): a linear warm-up over the first epoch, then a half cosine from the peak
rate down to zero at the last step. Every epoch runs (early stopping would cut the schedule while
the rate is still decaying) and the weights of the last epoch are kept: at the end of a cosine the
rate is near zero, and picking the best of a few dozen validation photos only adds noise.
``constant``: the peak rate throughout, with early stopping (``patience``) and the best
validation epoch's weights restored.
"""

from __future__ import annotations

import math

from edge.keras_setup import keras, tf
from edge.train.config import DECAYING_SCHEDULES


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """``peak * step / warmup`` for the first ``warmup`` steps, then ``peak * (1 + cos(pi t)) / 2``
    with ``t`` going from 0 to 1 over the remaining steps."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), self.warmup_steps + 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        decay = tf.cast(self.total_steps - self.warmup_steps, tf.float32)
        t = tf.clip_by_value((step - warmup) / decay, 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + tf.cos(math.pi * t))
        if self.warmup_steps == 0:
            return cosine
        return tf.where(step < warmup, self.peak * (step + 1.0) / (warmup + 1.0), cosine)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def learning_rate(schedule: str, peak: float, steps_per_epoch: int, epochs: int):
    """What the optimizer gets: a float for ``constant``, a schedule object otherwise."""
    if schedule not in DECAYING_SCHEDULES:
        return peak
    warmup = steps_per_epoch if epochs >= 3 else 0
    return WarmupCosine(peak, warmup, steps_per_epoch * epochs)
