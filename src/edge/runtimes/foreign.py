"""What the user says about a model without edge metadata (a .tflite or .onnx from elsewhere).

Such a model says nothing about its classes or preprocessing, so the user supplies them:
``--labels`` (a file with one label per line, or a comma list) and, for a float input,
``--mean``/``--std`` (the model sees ``(pixel - mean) / std``). The runtimes (``litert``,
``ort``) do the rest: input size from the input tensor, integer inputs through the tensor's own
quantization, NCHW inputs transposed, logits through a softmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError
from edge.spec import Normalization


@dataclass
class ForeignOptions:
    labels: list[str] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def normalization(self) -> Normalization | None:
        """The user's normalization (None when neither --mean nor --std was given)."""
        if self.mean is None and self.std is None:
            return None
        return Normalization(mean=self.mean or (0.0, 0.0, 0.0), std=self.std or (1.0, 1.0, 1.0))


def parse_labels(value: str | None) -> list[str] | None:
    """``--labels``: a file (one label per line) or a comma-separated list."""
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        labels = [item.strip() for item in value.split(",") if item.strip()]
    if not labels:
        raise EdgeError(f"--labels {value} holds no labels.")
    return labels


def parse_triple(value: str | None, option: str) -> tuple[float, float, float] | None:
    """``--mean 127.5`` or ``--mean 123.7,116.3,103.5`` (RGB, pixel units 0..255)."""
    if value is None or value == "":
        return None
    try:
        numbers = [float(v) for v in str(value).split(",")]
    except ValueError:
        raise EdgeError(f"{option} must be one number or three comma-separated numbers, not '{value}'.") from None
    if len(numbers) == 1:
        numbers *= 3
    if len(numbers) != 3:
        raise EdgeError(f"{option} must be one number or three comma-separated numbers, not '{value}'.")
    return (numbers[0], numbers[1], numbers[2])
