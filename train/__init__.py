"""edge.train: fine-tune a pretrained backbone on a folder of photos into a run directory."""

from edge.train.config import TrainConfig
from edge.train.runner import TrainResult, train

__all__ = ["train", "TrainConfig", "TrainResult"]
