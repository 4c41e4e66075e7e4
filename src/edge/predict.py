"""``predict(model, images)``: classify photos with any model edge makes (the API behind ``edge predict``).

The model is a ``.keras`` (with ``spec.json`` beside it), ``.tflite``, ``.onnx`` or ``.mlpackage``
(the MIL reference executor off macOS), or a run directory (its ``model.keras``). It loads through
its format's record (``edge.formats``) and runtime, exactly as export's gate and ``edge bench``
load it; labels, input size and normalization come from the model's own metadata. A model
without edge metadata (a ``.tflite``/``.onnx`` from elsewhere) loads through the format's
``load_foreign`` with ``labels`` (and ``mean``/``std`` for a float input).

Images are decoded like everywhere else in edge (``edge.data.images``: EXIF orientation, HEIC,
RGB, stretched to the model's input size with bilinear filtering). A folder contributes every
image file inside it (recursively, sorted); an image that cannot be read is named in
``PredictResult.skipped`` and the others go on. Nothing is printed: the caller presents the result.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import contract
from edge import formats as registry
from edge.callable_package import make_callable
from edge.errors import EdgeError, one_line
from edge.rundir import MODEL_FILE, is_finished
from edge.spec import Normalization

DEFAULT_TOP_K = 5
BATCH = 32  # images decoded and run per engine call


@dataclass(frozen=True)
class Prediction:
    """One class and its probability."""

    label: str
    score: float


@dataclass
class ImagePrediction:
    """One image and its top-k classes, best first."""

    path: str
    predictions: list[Prediction]

    @property
    def top(self) -> Prediction:
        return self.predictions[0]


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class PredictResult:
    """What ``predict`` returns: the model, the predictions per image, the images skipped."""

    model: str
    format: str  # the format's display name ("TFLite", "Core ML", ...)
    runtime: str
    labels: list[str]
    input_size: tuple[int, int]
    top_k: int
    images: list[ImagePrediction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        """One row per image: path, label_1, score_1, ... label_k, score_k, error (skipped images)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        header = ["path"]
        for rank in range(1, self.top_k + 1):
            header += [f"label_{rank}", f"score_{rank}"]
        writer.writerow([*header, "error"])
        for image in self.images:
            cells = [image.path]
            for p in image.predictions:
                cells += [p.label, f"{p.score:.6f}"]
            cells += [""] * (len(header) - len(cells))
            writer.writerow([*cells, ""])
        for skipped in self.skipped:
            writer.writerow([skipped.path, *[""] * (len(header) - 1), skipped.reason])
        return buf.getvalue()


def _triple(value, name: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (float(value),) * 3  # type: ignore[return-value]
    values = [float(v) for v in value]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise EdgeError(f"{name} must be one number or three (R, G, B), not {value!r}.")
    return (values[0], values[1], values[2])


def resolve_model(model: str | Path) -> Path:
    """The model file a path names: the file itself, or a finished run directory's model.keras."""
    path = Path(model).expanduser()
    if not path.exists():
        raise EdgeError(f"Model {path} does not exist.")
    if path.is_dir() and not registry.is_model_path(path):
        if is_finished(path):
            return path / MODEL_FILE
        raise EdgeError(f"{path} is a folder, not a model; name one model file in it (one of "
                        f"{', '.join(registry.suffixes())}) or a finished run directory.")
    return path


def image_paths(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files as given (in order), folders as every image file inside them (recursively, sorted)."""
    from edge.data.images import IMAGE_EXTENSIONS

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise EdgeError(f"{path} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
            paths += found
        elif path.exists():
            paths.append(path)
        else:
            raise EdgeError(f"Image {path} does not exist.")
    if not paths:
        raise EdgeError("No image given; pass image files or folders of images.")
    return list(dict.fromkeys(paths))


def load_predictor(model: str | Path, threads: int | None = None, labels: Sequence[str] | None = None,
                   mean=None, std=None):
    """A Predictor for ``model`` and warnings about options it ignored (edge metadata wins)."""
    path = resolve_model(model)
    fmt = registry.for_path(path)
    metadata = registry.read_metadata(path, fmt)
    warnings: list[str] = []
    if contract.KEY_SPEC in metadata:
        if labels or mean is not None or std is not None:
            warnings.append(f"{path.name} carries its own labels and normalization; --labels/--mean/--std are "
                            "only for models without edge metadata and were ignored.")
        loader = fmt.load
        args: tuple = ()
    else:
        if fmt.load_foreign is None:
            raise EdgeError(f"{path} carries no edge metadata, and {fmt.display_name} models without it cannot be "
                            "run here.")
        if not labels:
            raise EdgeError(f"{path} carries no edge metadata; pass --labels (a file or a comma list) and, for a "
                            "float input, --mean and --std.")
        m, s = _triple(mean, "mean"), _triple(std, "std")
        norm = None if m is None and s is None else Normalization(mean=m or (0.0, 0.0, 0.0), std=s or (1.0, 1.0, 1.0))
        loader, args = fmt.load_foreign, (list(labels), norm)
    try:
        predictor = loader(path, threads, *args) if args else loader(path, threads=threads)
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"{path} could not be loaded as a {fmt.display_name} model ({one_line(exc)}).") from exc
    return path, fmt, predictor, warnings


def check_output_width(predictor, path: Path) -> None:
    """Run one blank image and compare the output width with the number of labels (one sentence)."""
    spec = predictor.spec
    h, w = spec.input_size
    try:
        out = np.asarray(predictor(np.zeros((1, h, w, 3), np.uint8)))
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"{path} does not accept the {h}x{w} RGB images its metadata asks for (the runtime said: "
                        f"{one_line(exc)}).") from exc
    width = out.shape[-1] if out.ndim else 0
    if out.ndim != 2 or width != spec.num_classes:
        raise EdgeError(f"{path} outputs {width} scores per image but its labels name {spec.num_classes} classes.")


def best(probs: np.ndarray, labels: Sequence[str], k: int) -> list[Prediction]:
    """The ``k`` best classes of one probability row, best first (ties: lower class index first)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [Prediction(str(labels[i]), float(probs[i])) for i in order]


def predict(model: str | Path, images: str | Path | Sequence[str | Path], *, top_k: int = DEFAULT_TOP_K,
            labels: Sequence[str] | None = None,
            mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
            threads: int | None = None, batch: int = BATCH) -> PredictResult:
    """Classify ``images`` (files and/or folders) with ``model``; the ``top_k`` best classes per image.

    ``labels``/``mean``/``std`` only for models without edge metadata (see the module docstring).
    """
    k = top_k
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise EdgeError(f"--top-k must be a whole number of at least 1, not {k!r}.")
    if batch < 1:
        raise EdgeError("batch must be at least 1.")
    paths = image_paths(images)
    path, fmt, predictor, warnings = load_predictor(model, threads, labels, mean, std)
    spec = predictor.spec
    check_output_width(predictor, path)
    k = min(k, spec.num_classes)
    result = PredictResult(model=str(path), format=fmt.display_name, runtime=str(getattr(predictor, "runtime", "")),
                           labels=list(spec.labels), input_size=tuple(spec.input_size), top_k=k, warnings=warnings)
    from edge.data.images import ImageReadError, load_image

    own = spec.resize_filter
    for start in range(0, len(paths), batch):
        chunk, arrays = [], []
        for image in paths[start : start + batch]:
            try:
                arrays.append(load_image(image, spec.input_size, own))
                chunk.append(image)
            except (ImageReadError, OSError) as exc:
                result.skipped.append(Skipped(str(image), str(exc) or type(exc).__name__))
        if not arrays:
            continue
        probs = np.asarray(predictor(np.stack(arrays)), np.float64)
        for image, row in zip(chunk, probs):
            result.images.append(ImagePrediction(str(image), best(row, spec.labels, k)))
    return result


make_callable(__name__, predict)
