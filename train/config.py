"""TrainConfig: every option of a training run, with the defaults a user gets without tuning."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TrainConfig:
    backbone: str = "mobilenet_v2"
    weights: str = "imagenet"  # imagenet | none | PATH
    alpha: float | None = None  # width multiplier (MobileNets)
    image_size: int | None = None  # None: the backbone's default
    epochs: int = 20  # stage 1: head on cached bottlenecks (or the whole net when weights=none)
    fine_tune_epochs: int = 10  # stage 2: top backbone layers at a low learning rate (0 = skip)
    fine_tune_from: str | None = None  # first layer to unfreeze (default: the backbone's own)
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    dropout: float = 0.2
    label_smoothing: float = 0.1
    class_weights: str = "auto"  # auto | none | balanced
    patience: int = 5  # early stopping on val accuracy, best weights restored
    augment: bool = True
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    csv: str | None = None
    mixed_precision: str = "auto"  # auto | on | off
    devices: str = "auto"  # auto | cpu | cpu:N (N logical CPUs, mirrored) | gpu
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["split"] = list(self.split)
        return data

    def resume_key(self) -> dict:
        """The options that must match for an interrupted run to be continued."""
        data = self.to_dict()
        for key in ("mixed_precision", "devices", "patience", "extra"):
            data.pop(key, None)
        return data
