"""The format registry: name -> ``Format``, each format module imported only when first asked for.

Importing this module is cheap (no TensorFlow, no converters); ``get("onnx")`` imports
``edge.export.onnx`` and returns its ``FORMAT``. A format whose module or converter cannot be
imported is reported as an ``EdgeError`` naming the format, never a traceback.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edge.errors import EdgeError
from edge.export.base import FORMATS, Format

# name -> (module, suffix). The suffix lives here too so `for_path` needs no imports.
MODULES: dict[str, tuple[str, str]] = {
    "tflite": ("edge.export.tflite", ".tflite"),
    "onnx": ("edge.export.onnx", ".onnx"),
    "coreml": ("edge.export.coreml", ".mlpackage"),
    "keras": ("edge.export.keras_model", ".keras"),
}
EXPORT_FORMATS = ("tflite", "onnx", "coreml")  # what `--format` accepts (keras is the reference)


def names() -> tuple[str, ...]:
    return EXPORT_FORMATS


def get(name: str) -> Format:
    """The registered ``Format`` called ``name`` (imports its module on first use)."""
    key = name.strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    if key not in MODULES:
        raise EdgeError(f"Unknown format '{name}'; choose from {', '.join(EXPORT_FORMATS)}.")
    module_name = MODULES[key][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise EdgeError(f"{key} export is not available in this installation.") from exc
        raise EdgeError(f"{key} export is not available ({exc.name} is not installed).") from exc
    except ImportError as exc:
        raise EdgeError(f"{key} export is not available ({str(exc).splitlines()[0][:160]}).") from exc
    fmt = getattr(module, "FORMAT", None)
    if not isinstance(fmt, Format):
        raise EdgeError(f"{key} export is not available ({module_name} defines no FORMAT).")
    FORMATS[key] = fmt
    return fmt


def for_path(path: str | Path) -> Format:
    """The format of an artifact file by its suffix (``.tflite``, ``.onnx``, ``.mlpackage``, ``.keras``)."""
    suffix = Path(path).suffix.lower()
    for name, (_, known) in MODULES.items():
        if suffix == known:
            return get(name)
    known = ", ".join(s for _, s in MODULES.values())
    raise EdgeError(f"Cannot tell the model format of {path}; expected a file ending in {known}.")


def load(path: str | Path, threads: int | None = None):
    """Load any artifact edge can run as a ``Predictor`` (its spec comes from its own metadata)."""
    path = Path(path)
    if not path.exists():
        raise EdgeError(f"Model file {path} does not exist.")
    return for_path(path).load(path, threads=threads)
