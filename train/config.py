"""TrainConfig: every option of a training run, its default, and its validation.

The config is the one place options are checked. Building one (directly, through ``train(...,
epochs=...)`` or from ``edge train``'s flags) refuses a bad value with one sentence (EdgeError)
naming the option as the API and the CLI spell it, before any work: the API and the CLI refuse
the same values with the same sentence. Valid values are normalised (``split="60/20/20"`` becomes
fractions, numpy numbers become Python numbers, choices lower-case). The CLI reads its defaults
and flag names from here.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import asdict, dataclass, field, fields

from edge.backbones import BACKBONES, DEFAULT_BACKBONE, get_backbone
from edge.data.resize import DEFAULT_MODE, MODES, own_filter
from edge.errors import EdgeError

CLASS_WEIGHTS = ("auto", "balanced", "none")
MIXED_PRECISION = ("auto", "on", "off")
DEVICES = ("auto", "cpu", "gpu")  # and cpu:N
SCHEDULES = ("cosine", "constant")  # fine-tuning learning rate (train/schedule.py)
DECAYING_SCHEDULES = ("cosine",)  # they run every epoch (no early stopping) and keep the last weights
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024
MAX_SEED = 2**32 - 1  # numpy's and TensorFlow's seed range
# Not part of what must match to continue an interrupted run: they change where or how fast it
# runs, or (csv_allow_outside) only permit what the scan would otherwise refuse.
NOT_IN_RESUME_KEY = ("mixed_precision", "devices", "patience", "extra", "csv_allow_outside")


@dataclass
class TrainConfig:
    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"  # imagenet | none | PATH
    alpha: float | None = None  # width multiplier (MobileNets)
    image_size: int | None = None  # None: the backbone's default
    epochs: int = 20  # stage 1: head on cached bottlenecks (or the whole net when weights=none)
    fine_tune_epochs: int = 8  # stage 2: top backbone layers at a low learning rate (0 = skip); 10 was no better
    # in 5-fold CV over two seeds (README, "The default recipe") and 25% slower
    fine_tune_from: str | None = None  # first layer to unfreeze (default: the backbone's own)
    batch_size: int = 32
    learning_rate: float = field(default=1e-3, metadata={"flag": "--lr"})
    fine_tune_learning_rate: float = field(default=1e-4, metadata={"flag": "--fine-tune-lr"})
    fine_tune_schedule: str = "cosine"  # cosine (1 warm-up epoch, every epoch runs) | constant (early stopping)
    fine_tune_views: int = 2  # views cached through the frozen layers: the photo + augmented ones (0 = fine-tune
    # on images); 3 was no better in 5-fold CV over two seeds (README, "The default recipe") and 10% slower
    int8_exact: bool = True  # the fine-tune trains on int8-rounded kernels and ends on them (edge.train.int8_grid):
    # int8/float agreement 99.0% instead of 97.9% in 5-fold CV over two seeds, the same accuracy (README)
    dropout: float = 0.2
    label_smoothing: float = 0.0  # 0.1: same accuracy, less stable int8 and resized answers (benchmarks/results/train_cv.md)
    class_weights: str = "auto"  # auto | none | balanced
    patience: int = 5  # early stopping on val accuracy, best weights restored (0 = off; not with a decaying schedule)
    augment: bool = True
    resize_augment: bool = False  # augmented views resize each photo with a consumer's filter (edge.data.resize)
    resize: str = DEFAULT_MODE  # the model's own resize (edge.data.resize.MODES): training, the gate, bench, predict
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # or "80/10/10"
    seed: int = 42
    csv: str | None = None
    csv_allow_outside: bool = False  # CSV rows may name files outside the data folder
    mixed_precision: str = "auto"  # auto | on | off
    devices: str = "auto"  # auto | cpu | cpu:N (N logical CPUs, mirrored) | gpu
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every option and normalise it in place; raise EdgeError naming the first bad one."""
        if not isinstance(self.backbone, str):
            raise EdgeError(f"{label('backbone')} must be one of {', '.join(BACKBONES)}, not {self.backbone!r}.")
        backbone = get_backbone(self.backbone)
        if self.weights is None or not isinstance(self.weights, (str, os.PathLike)):
            raise EdgeError(f"{label('weights')} must be imagenet, none or the path of a weights file, not {self.weights!r}.")
        self.weights = os.fspath(self.weights)
        if self.alpha is not None:
            self.alpha = _number("alpha", self.alpha, low=0.0, low_open=True, what="a number greater than 0")
            if not backbone.has_alpha:
                with_alpha = ", ".join(b.name for b in BACKBONES.values() if b.has_alpha)
                raise EdgeError(f"{label('alpha')} applies only to {with_alpha}, not {self.backbone}.")
        if self.image_size is not None:
            self.image_size = _whole("image_size", self.image_size)
            if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
                raise EdgeError(
                    f"{label('image_size')} must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, not "
                    f"{self.image_size} (below {MIN_IMAGE_SIZE} the backbone's 32x downsampling leaves nothing "
                    f"to classify; above {MAX_IMAGE_SIZE} training runs out of memory)."
                )
        self.epochs = _whole("epochs", self.epochs, low=1)
        self.fine_tune_epochs = _whole("fine_tune_epochs", self.fine_tune_epochs, low=0)
        if self.fine_tune_from is not None and (not isinstance(self.fine_tune_from, str) or not self.fine_tune_from):
            raise EdgeError(f"{label('fine_tune_from')} must be the name of a backbone layer, not {self.fine_tune_from!r}.")
        self.fine_tune_schedule = _choice("fine_tune_schedule", self.fine_tune_schedule, SCHEDULES)
        self.fine_tune_views = _whole("fine_tune_views", self.fine_tune_views, low=0)
        self.batch_size = _whole("batch_size", self.batch_size, low=1)
        for name in ("learning_rate", "fine_tune_learning_rate"):
            setattr(self, name, _number(name, getattr(self, name), low=0.0, low_open=True, what="a number greater than 0"))
        for name in ("dropout", "label_smoothing"):
            setattr(self, name, _number(name, getattr(self, name), low=0.0, high=1.0, what="at least 0 and below 1"))
        self.class_weights = _choice("class_weights", self.class_weights, CLASS_WEIGHTS)
        self.patience = _whole("patience", self.patience, low=0)
        self.augment = _flag_value("augment", self.augment)
        self.resize_augment = _flag_value("resize_augment", self.resize_augment)
        self.resize = _choice("resize", self.resize, tuple(MODES))
        self.int8_exact = _flag_value("int8_exact", self.int8_exact)
        self.split = _split(self.split)
        self.seed = _whole("seed", self.seed, low=0, high=MAX_SEED)
        if self.csv is not None:
            if not isinstance(self.csv, (str, os.PathLike)) or not os.fspath(self.csv):
                raise EdgeError(f"{label('csv')} must be the path of a CSV file, not {self.csv!r}.")
            self.csv = os.fspath(self.csv)
        self.csv_allow_outside = _flag_value("csv_allow_outside", self.csv_allow_outside)
        self.mixed_precision = _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        self.devices = _devices(self.devices)
        if not isinstance(self.extra, dict):
            raise EdgeError(f"extra must be a dict, not {self.extra!r}.")

    @property
    def start_layer(self) -> str:
        """The first layer fine-tuning trains: ``fine_tune_from``, or the backbone's own choice."""
        return self.fine_tune_from or get_backbone(self.backbone).fine_tune_from

    @property
    def resize_filter(self) -> str:
        """The edge.data.resize filter of the model's own resize (``resize``)."""
        return own_filter(self.resize)

    def to_dict(self) -> dict:
        """The options as spec.json and the resume check record them: ``fine_tune_from`` resolved, so a
        run says which layers it fine-tuned when the backbone's default changes."""
        data = asdict(self)
        data["split"] = list(self.split)
        data["fine_tune_from"] = self.start_layer
        return data

    def resume_key(self) -> dict:
        """The options that must match for an interrupted run to be continued."""
        data = self.to_dict()
        for key in NOT_IN_RESUME_KEY:
            data.pop(key, None)
        return data


def flag(name: str) -> str:
    """The ``edge train`` flag of the TrainConfig field ``name`` (``learning_rate`` -> ``--lr``)."""
    meta = {f.name: f.metadata for f in fields(TrainConfig)}[name]
    return meta.get("flag", "--" + name.replace("_", "-"))


def label(name: str) -> str:
    """How error messages name an option, for API and CLI users alike: ``learning_rate (--lr)``."""
    return f"{name} ({flag(name)})"


def format_split(fractions) -> str:
    """``(0.8, 0.1, 0.1)`` -> ``"80/10/10"`` (the CLI's form)."""
    return "/".join(f"{100 * f:g}" for f in fractions)


def _whole(name: str, value, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise EdgeError(f"{label(name)} must be a whole number, not {value!r}.")
    value = int(value)
    if low is not None and high is not None and not low <= value <= high:
        raise EdgeError(f"{label(name)} must be between {low} and {high}, not {value}.")
    if low is not None and value < low:
        raise EdgeError(f"{label(name)} must be at least {low}, not {value}.")
    return value


def _number(name: str, value, low: float, what: str, low_open: bool = False, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise EdgeError(f"{label(name)} must be {what}, not {value!r}.")
    value = float(value)
    if value < low or (low_open and value == low) or (high is not None and value >= high):
        raise EdgeError(f"{label(name)} must be {what}, not {value:g}.")
    return value


def _choice(name: str, value, choices: tuple[str, ...]) -> str:
    normal = value.strip().lower() if isinstance(value, str) else None
    if normal not in choices:
        raise EdgeError(f"{label(name)} must be one of {', '.join(choices)}, not {value!r}.")
    return normal


def _flag_value(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise EdgeError(f"{label(name)} must be True or False, not {value!r}.")
    return value


def _devices(value) -> str:
    normal = value.strip().lower() if isinstance(value, str) else ""
    match = re.fullmatch(r"cpu:(\d+)", normal)
    if normal not in DEVICES and not (match and int(match.group(1)) >= 1):
        raise EdgeError(f"{label('devices')} must be {', '.join(DEVICES)} or cpu:N with N at least 1, not {value!r}.")
    return normal


def _split(value) -> tuple[float, float, float]:
    """``"80/10/10"``, ``"0.8,0.1,0.1"`` or three numbers -> train/val/test fractions summing to 1."""
    bad = EdgeError(f"{label('split')} must be three non-negative train/val/test parts with a non-zero train part, "
                    f"such as 80/10/10 or (0.8, 0.1, 0.1), not {value!r}.")
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(",", "/").split("/")]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise bad from None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
        raise bad
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 for v in value):
        raise bad
    values = [float(v) for v in value]
    total = sum(values)
    if values[0] <= 0:
        raise bad
    if abs(total - 1.0) > 1e-9:
        values = [v / total for v in values]
    return (values[0], values[1], values[2])
