"""The labelled images a bench runs on: class folders (``--data``) or a run's held-out split.

Labels are kept as names, so every model maps them to its own class order (a class the model
does not know is an error naming it). Images are decoded and resized with
``edge.data.images.load_image`` once per input size, before anything is timed (and, for the resize
check, with each of ``edge.data.resize.VARIANTS`` once per input size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.rundir import open_run
from edge.spec import ModelSpec


@dataclass
class EvalSet:
    """Image paths with their label names, and where they came from."""

    paths: list[str]
    label_names: list[str]
    source: str
    _cache: dict[tuple[int, int, str | None], np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.label_names))

    def images(self, size: tuple[int, int], variant: str | None = None) -> np.ndarray:
        """uint8 (N, H, W, 3) at ``size``, decoded once and cached: resized edge's way (``load_image``), or
        with ``variant``, a filter of ``edge.data.resize.RESIZERS`` (a model's own, or another app's)."""
        return self.stacks(size, (variant,))[variant]

    def stacks(self, size: tuple[int, int], variants: Sequence[str | None]) -> dict[str | None, np.ndarray]:
        """``images(size, variant)`` for each of ``variants``; those not cached yet decoded under one progress bar."""
        from edge.data.resize import REFERENCE

        size = (int(size[0]), int(size[1]))
        asked = {v: v or REFERENCE for v in variants}  # None is edge's own filter
        missing = [v for v in dict.fromkeys(asked.values()) if (*size, v) not in self._cache]
        if missing:
            from edge.console import progress

            how = f" ({len(missing)} ways)" if len(missing) > 1 else "" if missing == [REFERENCE] else f" ({missing[0]} resize)"
            out = {v: np.zeros((len(self.paths), size[0], size[1], 3), np.uint8) for v in missing}
            with progress(transient=True) as bar:
                task = bar.add_task(f"Decoding {len(self.paths)} images at {size[0]}x{size[1]}{how}",
                                    total=len(self.paths) * len(missing), info="")
                for i, path in enumerate(self.paths):
                    for variant, image in _load(path, size, missing).items():
                        out[variant][i] = image
                    bar.advance(task, len(missing))
            self._cache.update({(*size, v): stack for v, stack in out.items()})
        return {v: self._cache[(*size, asked[v])] for v in variants}

    def labels_for(self, spec: ModelSpec, model: str) -> np.ndarray:
        """Class indices in ``spec``'s label order; unknown label names are an error."""
        index = {label: i for i, label in enumerate(spec.labels)}
        unknown = sorted({name for name in self.label_names if name not in index})
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise EdgeError(f"The data ({self.source}) has classes {model} does not know: {shown} "
                            f"(its labels: {', '.join(spec.labels[:8])}{' ...' if len(spec.labels) > 8 else ''}).")
        return np.array([index[name] for name in self.label_names], int)


def _load(path: str, size: tuple[int, int], variants: list[str | None]) -> dict[str | None, np.ndarray]:
    """One image at ``size``, decoded once, resized each of ``variants``' way (None: edge's own);
    unreadable is an EdgeError."""
    from edge.data.images import ImageReadError, load_variants
    from edge.data.resize import REFERENCE

    try:
        images = load_variants(path, size, [v or REFERENCE for v in variants])
        return {v: images[v or REFERENCE] for v in variants}
    except (ImageReadError, OSError) as exc:
        raise EdgeError(f"Could not read the image {path} ({exc}).") from exc


def from_folder(data: str | Path) -> EvalSet:
    """Every image of a class-folder dataset (or of its ``test`` folder when it is pre-split)."""
    from edge.data.scan import scan

    data = Path(data).expanduser()
    scanned = scan(data, min_per_class=1)
    groups = scanned.samples or scanned.presplit.get("test") or [s for g in scanned.presplit.values() for s in g]
    if not groups:
        raise EdgeError(f"No images found in {data}; expected one sub-folder per class with images inside.")
    return EvalSet([s.path for s in groups], [scanned.labels[s.label] for s in groups], str(data))


def from_run(run_dir: str | Path) -> EvalSet:
    """The held-out split (test, else validation) of a finished run."""
    run = open_run(Path(run_dir).expanduser())
    samples = run.held_out()
    if not samples:
        raise EdgeError(f"The run {run.path} has no test or validation split; pass --data DIR.")
    split = "test" if run.samples("test") else "val"
    return EvalSet([s.path for s in samples], [run.spec.labels[s.label] for s in samples], f"{run.path} ({split} split)")
