"""What is exported: a run directory or a ``.keras`` file with its spec, and the images it brings.

The held-out images the gate runs on (``--data`` class folders, else the run's test/val split),
and the training split that int8 calibration and QAT draw from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.rundir import MODEL_FILE, Run, Sample, open_run
from edge.spec import SPEC_FILE, ModelSpec


@dataclass
class Source:
    """The model file, its spec, and (for a run) the run."""

    model_path: Path
    spec: ModelSpec
    run: Run | None

    @property
    def label(self) -> str:
        return str(self.run.path if self.run else self.model_path)

    @property
    def identity(self) -> str:
        """What artifacts carry to name their run: ``name@id``, never a path on this disk."""
        run_id = getattr(self.spec, "run_id", "") or ""
        return f"{self.spec.name}@{run_id}" if run_id else self.spec.name

    def held_out(self, data: str | Path | None) -> tuple[list[Sample], str]:
        """The labelled images the gate runs on: ``--data`` class folders, else the run's held-out split."""
        if data is not None:
            return data_samples(Path(data), self.spec), str(data)
        if self.run is None:
            raise EdgeError("A .keras model outside its run has no held-out images; pass --data DIR (class folders).")
        samples = self.run.held_out()
        if not samples:
            raise EdgeError(f"The run {self.run.path} has no test or validation split; pass --data DIR.")
        return samples, f"{self.run.path} held-out split"

    def calibration_samples(self, held_out: list[Sample]) -> list[Sample]:
        """The training split when there is one (int8 calibration), else the held-out images."""
        if self.run is not None:
            train = self.run.samples("train")
            if train:
                return train
        return held_out


def resolve_source(path: str | Path) -> Source:
    """A run directory, or a ``.keras`` file with ``spec.json`` beside it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise EdgeError(f"{path} does not exist; pass a run directory or a .keras model.")
    if path.is_dir():
        run = open_run(path)
        return Source(run.model_path, run.spec, run)
    if path.suffix.lower() != ".keras":
        raise EdgeError(f"{path} is neither a run directory nor a .keras model.")
    if not (path.parent / SPEC_FILE).is_file():
        raise EdgeError(f"No {SPEC_FILE} next to {path}; a .keras model needs the spec written by edge train.")
    spec = ModelSpec.load(path.parent / SPEC_FILE)
    if (path.parent / MODEL_FILE).resolve() == path.resolve():
        try:
            return Source(path, spec, open_run(path.parent))
        except EdgeError:
            pass
    return Source(path, spec, None)


def data_samples(data: Path, spec: ModelSpec) -> list[Sample]:
    """Images of a class-folder dataset, labelled by the spec's label order (unknown classes refused)."""
    from edge.data.scan import scan

    scanned = scan(data, min_per_class=1)
    index = {label: i for i, label in enumerate(spec.labels)}
    unknown = [label for label in scanned.labels if label not in index]
    if unknown:
        raise EdgeError(f"--data {data} has classes the model does not know: {', '.join(unknown[:5])}.")
    samples = scanned.samples or scanned.presplit.get("test") or [s for group in scanned.presplit.values() for s in group]
    return [Sample(s.path, index[scanned.labels[s.label]]) for s in samples]


def load_images(samples: list[Sample], spec: ModelSpec) -> np.ndarray:
    """The samples decoded and resized as training did (one sentence when a file is gone)."""
    from edge.data.images import ImageReadError
    from edge.data.images import load_images as decode

    try:
        return decode([s.path for s in samples], spec.input_size, spec.resize_filter)
    except (ImageReadError, FileNotFoundError) as exc:
        raise EdgeError(f"Could not read a held-out image ({exc}); was the dataset moved since training?") from exc


def check_model_matches_spec(model, spec: ModelSpec, where: str) -> None:
    """The spec's labels and input size must fit the model, or nothing edge writes can be right."""
    width = int(model.output_shape[-1])
    if width != spec.num_classes:
        raise EdgeError(f"{where} lists {spec.num_classes} labels but the model outputs {width} classes; "
                        "the spec does not belong to this model.")
    h, w = (int(v) if v is not None else None for v in model.input_shape[1:3])
    if (h, w) != tuple(spec.input_size) and None not in (h, w):
        raise EdgeError(f"{where} says the input is {spec.input_size[0]}x{spec.input_size[1]} but the model takes "
                        f"{h}x{w}; the spec does not belong to this model.")
