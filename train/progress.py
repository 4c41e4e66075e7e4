"""A Keras callback that drives rich progress bars (epochs and batches) instead of Keras' own output.

Without a terminal (CI logs, ``| tee``) a live bar cannot redraw, so each finished epoch is also
printed as one plain line (``scratch 3/12: loss 0.612  accuracy 0.781 ...``, within 80 columns).
"""

from __future__ import annotations

from edge.keras_setup import keras


class RichProgress(keras.callbacks.Callback):
    def __init__(self, progress, description: str, epochs: int, initial_epoch: int = 0, steps: int | None = None):
        super().__init__()
        self.progress = progress
        self.description = description
        self.epochs = epochs
        self.epoch_task = progress.add_task(description, total=epochs, completed=initial_epoch, info="")
        self.batch_task = progress.add_task("  batches", total=steps, info="", visible=steps is not None)

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.reset(self.batch_task)

    def on_train_batch_end(self, batch, logs=None):
        info = f"loss {logs.get('loss', float('nan')):.3f}" if logs else ""
        self.progress.update(self.batch_task, advance=1, info=info)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"{k} {logs[k]:.3f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs]
        self.progress.update(self.epoch_task, completed=epoch + 1, info="  ".join(parts))
        console = self.progress.console
        if not console.is_terminal and not self.progress.disable:
            console.print(f"{self.description} {epoch + 1}/{self.epochs}: {'  '.join(parts)}", highlight=False,
                          soft_wrap=True)

    def on_train_end(self, logs=None):
        self.progress.update(self.batch_task, visible=False)
