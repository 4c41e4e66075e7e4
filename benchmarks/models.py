"""Which models to bench: expand files and export directories, read metadata, load Predictors.

Every model is loaded through its format's record (``edge.formats``): edge artifacts by the
format's ``load`` (spec from the artifact's own metadata), files without edge metadata by its
``load_foreign`` with the user's ``--labels`` (and ``--mean``/``--std`` for float inputs).
An export directory contributes the usable artifacts its report names inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge import artifacts, contract
from edge import formats as registry
from edge.errors import EdgeError, one_line
from edge.formats import Format
from edge.rundir import MODEL_FILE, is_finished
from edge.runtimes import Predictor
from edge.runtimes.foreign import ForeignOptions


@dataclass
class ModelRef:
    """One model file to bench, with what is known before loading it."""

    path: Path
    format: str  # a registry name
    quantize: str = ""  # fp32 | fp16 | dynamic | int8 | ... ("" when unknown)
    source_run: str = ""  # the run it was exported from, when known

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def fmt(self) -> Format:
        return registry.get(self.format)


def expand(paths) -> list[ModelRef]:
    """Files as given, directories as all the models they hold (an export dir: its usable artifacts)."""
    refs: list[ModelRef] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise EdgeError(f"Model file {path} does not exist.")
        if path.is_dir() and not registry.is_model_path(path):
            refs += _directory(path)
        else:
            refs.append(_ref(path))
    seen, unique = set(), []
    for ref in refs:
        key = ref.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(ref)
    if not unique:
        raise EdgeError("No model to bench; pass " + ", ".join(registry.suffixes()) + " files, or an export directory.")
    return unique


def _ref(path: Path, quantize: str = "", source_run: str = "") -> ModelRef:
    fmt = registry.for_path(path)
    return ModelRef(path, fmt.name, quantize or registry.kind_from_name(path, fmt), source_run)


def _directory(path: Path) -> list[ModelRef]:
    if artifacts.read_report(path) is not None:  # an export folder: exactly what its report vouches for
        listed = artifacts.listed_artifacts(path)
        if not listed:
            raise EdgeError(f"The export report in {path} lists no usable artifact (was the export interrupted?); "
                            "run edge export again or pass the model files.")
        run = artifacts.source_run(path)
        return [_ref(item.path, item.quantize, str(run) if run else "") for item in listed]
    if is_finished(path):  # a run directory
        return [_ref(path / MODEL_FILE, "fp32", str(path))]
    found = sorted(p for p in path.iterdir() if registry.is_model_path(p) and not p.name.startswith("."))
    if not found:
        raise EdgeError(f"{path} contains no model files ({', '.join(registry.suffixes())}).")
    return [_ref(p) for p in found]


def read_metadata(ref: ModelRef) -> dict[str, str]:
    """edge's key/values of the artifact ({} when it has none); raises EdgeError if it is not a model."""
    return registry.read_metadata(ref.path, ref.fmt)


def source_run(ref: ModelRef, metadata: dict[str, str]) -> Path | None:
    """The finished run directory this model came from, when it still exists."""
    candidates = [ref.source_run]
    if ref.path.name == MODEL_FILE:
        candidates.append(str(ref.path.parent))
    legacy = metadata.get(contract.KEY_SOURCE_RUN, "")  # exports before 0.2 stored a path here
    if legacy and "@" not in legacy:
        candidates += [legacy, str(ref.path.parent / legacy)]
    for candidate in candidates:
        if candidate and is_finished(Path(candidate)):
            return Path(candidate)
    return None


def load(ref: ModelRef, threads: int | None, foreign_options: ForeignOptions | None = None) -> Predictor:
    """A Predictor for ``ref`` (an edge artifact via its format, or a foreign model via the runtimes)."""
    fmt = ref.fmt
    if contract.KEY_SPEC not in read_metadata(ref) and fmt.load_foreign is not None:
        options = foreign_options or ForeignOptions()
        if not options.labels:
            raise EdgeError(f"{ref.path} carries no edge metadata; pass --labels (a file or a comma list) and, "
                            "for a float input, --mean and --std.")
        return fmt.load_foreign(ref.path, threads, options.labels, options.normalization())
    try:
        return fmt.load(ref.path, threads=threads)
    except EdgeError:
        raise
    except Exception as exc:
        raise EdgeError(f"{ref.path} could not be loaded as a {fmt.display_name} model ({one_line(exc)}).") from exc
