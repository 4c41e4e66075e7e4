"""Per-epoch checkpoints with early stopping state, so a killed run resumes losing at most one epoch.

After every epoch a stage directory gets: the model and optimizer state (tf.train.Checkpoint),
the best weights so far, and ``state.json`` (written last, atomically) naming the epoch, the
checkpoint it belongs to, the history and the early-stopping counters.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge.fileio import atomic_write_text
from edge.keras_setup import keras, tf

STATE_FILE = "state.json"
BEST_DIR = "best"


class StageCheckpoint(keras.callbacks.Callback):
    """Saves after each epoch; stops early on ``monitor`` and restores the best weights at the end
    (``restore_best=False``: keeps the last epoch's weights, as a decaying schedule wants)."""

    def __init__(self, directory: Path, weights_model, optimizer, monitor: str = "val_accuracy", patience: int = 5,
                 restore_best: bool = True):
        super().__init__()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.weights_model = weights_model  # the model whose weights matter (the full classifier)
        self.monitor = monitor
        self.patience = patience
        self.restore_best = restore_best
        self.ckpt = tf.train.Checkpoint(model=weights_model, optimizer=optimizer)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.directory / "latest"), max_to_keep=2)
        # TF checkpoints (not .h5) also restore correctly into mirrored variables under a strategy.
        self.best_ckpt = tf.train.Checkpoint(model=weights_model)
        self.state = {"epoch": -1, "checkpoint": None, "history": {}, "best": None, "best_epoch": -1,
                      "best_checkpoint": None, "wait": 0, "done": False}

    # --- resume -----------------------------------------------------------------------------
    def load_state(self) -> dict:
        path = self.directory / STATE_FILE
        if path.is_file():
            self.state = json.loads(path.read_text())
        return self.state

    def restore(self) -> int:
        """Restore the last completed epoch; return the epoch to start from (0 for a fresh stage)."""
        self.load_state()
        if self.state["checkpoint"]:
            self.ckpt.restore(self.state["checkpoint"]).expect_partial()
        return self.state["epoch"] + 1

    @property
    def done(self) -> bool:
        return bool(self.load_state().get("done"))

    # --- callback ---------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key, value in logs.items():
            self.state["history"].setdefault(key, []).append(float(value))
        current = logs.get(self.monitor)
        if current is not None and (self.state["best"] is None or current > self.state["best"]):
            previous = self.state.get("best_checkpoint")
            path = self.best_ckpt.write(str(self.directory / BEST_DIR / f"epoch-{epoch}" / "weights"))
            self.state.update(best=float(current), best_epoch=epoch, wait=0, best_checkpoint=path)
            self._obsolete = Path(previous).parent if previous else None
        else:
            self.state["wait"] += 1
        self.state["checkpoint"] = self.manager.save(checkpoint_number=epoch)
        self.state["epoch"] = epoch
        self._in_memory = epoch  # the model holds this epoch's weights
        self._write_state()
        if getattr(self, "_obsolete", None):  # only once the new state no longer points at it
            shutil.rmtree(self._obsolete, ignore_errors=True)
            self._obsolete = None
        if self.patience and self.state["wait"] >= self.patience:
            self.model.stop_training = True

    def finish(self) -> dict:
        """Restore the best weights (if any, and if asked to) and mark the stage done. The weights kept
        are recorded as ``kept_epoch``."""
        if self.restore_best and self.state.get("best_checkpoint"):
            self.best_ckpt.read(self.state["best_checkpoint"]).expect_partial()
            self.state["kept_epoch"] = self.state["best_epoch"]
        else:
            if self.state.get("checkpoint") and getattr(self, "_in_memory", None) != self.state["epoch"]:
                self.ckpt.restore(self.state["checkpoint"]).expect_partial()  # e.g. a finished stage, resumed
            self.state["kept_epoch"] = self.state["epoch"]
        self.state["done"] = True
        self._write_state()
        return self.state

    def _write_state(self) -> None:
        atomic_write_text(self.directory / STATE_FILE, json.dumps(self.state, indent=1))
