"""edge.train: fine-tune a pretrained backbone on a folder of photos into a run directory.

The package is also the API function: ``edge.train("data/", ...)`` runs ``edge.train.runner.train``
(what ``edge train`` calls); ``TrainConfig`` holds every option with its default and validation.
"""

from edge.callable_package import make_callable
from edge.train.config import TrainConfig
from edge.train.runner import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]

make_callable(__name__, train)
