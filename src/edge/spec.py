"""ModelSpec: the facts that travel with a trained model (labels, input size, normalization, ...).

`edge train` writes `spec.json` next to the model; export copies it into every artifact's
metadata; bench and the iOS app read it back from there. Nothing else in the code base holds a
second copy of the label order or the normalization constants.

Normalization convention: the backbone sees ``(pixel[channel_order] - mean) / std`` where
``pixel`` is RGB in 0..255. Every exported model contains this step, so its input is raw pixels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.data.resize import DEFAULT_MODE, own_filter
from edge.errors import EdgeError
from edge.fileio import atomic_write_text

SPEC_FILE = "spec.json"
SPEC_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Normalization:
    """Maps raw 0..255 pixels to the backbone's input: (x - mean) / std, per channel."""

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: str = "RGB"

    @property
    def scale(self) -> tuple[float, ...]:
        """Per-channel multiplier of the equivalent ``x * scale + offset`` form."""
        return tuple(1.0 / s for s in self.std)

    @property
    def offset(self) -> tuple[float, ...]:
        """Per-channel offset of the equivalent ``x * scale + offset`` form."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))

    @property
    def is_identity(self) -> bool:
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        return cls(
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            channel_order=str(data.get("channel_order", "RGB")),
        )


@dataclass
class ModelSpec:
    """Everything a consumer of a trained model needs to feed it and read its output."""

    name: str
    backbone: str
    labels: list[str]
    input_size: tuple[int, int]
    normalization: Normalization
    # How training resized images: the whole image stretched to input_size (no crop, aspect
    # not kept), with the filter edge.data.resize.MODES names for it (Pillow's antialiased bilinear,
    # or MediaPipe Tasks' own). The iOS app asks Vision for the same geometry (scaleFill).
    resize: str = DEFAULT_MODE
    alpha: float | None = None
    weights: str = "imagenet"
    seed: int = 0
    split: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    model_version: str = "1"
    created: str = ""
    # The run's identity (random id from the run directory's .edge-run.json): exports carry
    # name + run_id instead of a path on the developer's disk. "" in specs older than the field.
    run_id: str = ""
    format_version: int = SPEC_FORMAT_VERSION

    @property
    def resize_filter(self) -> str:
        """The edge.data.resize filter that reproduces ``resize`` (EdgeError for a mode edge does not know)."""
        return own_filter(self.resize)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size[0], self.input_size[1], 3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["normalization"] = self.normalization.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        try:
            fields = dict(data)
            fields["input_size"] = tuple(int(v) for v in fields["input_size"])
            fields["normalization"] = Normalization.from_dict(fields["normalization"])
            fields["labels"] = [str(v) for v in fields["labels"]]
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in fields.items() if k in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgeError(f"The model spec is incomplete or malformed ({exc}).") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise EdgeError(f"The model spec is not valid JSON ({exc.msg}).") from exc

    def save(self, directory: Path) -> Path:
        path = Path(directory) / SPEC_FILE
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> ModelSpec:
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILE
        if not path.is_file():
            raise EdgeError(f"No model spec found at {path}.")
        return cls.from_json(path.read_text(encoding="utf-8"))
