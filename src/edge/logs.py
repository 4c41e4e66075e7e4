"""Third-party log silencing: what TensorFlow, absl, coremltools, onnxruntime and tf2onnx print.

edge's own output is rich text on its consoles; everything else on a small export used to be
about 30 lines of other libraries' logs. By default (``configure(verbose=False)``, what the CLI
does unless ``-v/--verbose``) they are silenced:

* TensorFlow's C++ logs: ``TF_CPP_MIN_LOG_LEVEL=3`` before TensorFlow is imported (set here,
  read by ``edge.keras_setup``). Level 3 also hides C++ ERROR lines such as "failed call to
  cuInit" on machines without a GPU; real failures still reach the user as Python exceptions.
* The lines TensorFlow's absl writes while it is imported ("All log messages before
  absl::InitializeLog()", oneDNN and CUDA-stub notices) ignore that variable, so
  ``native_stderr_quiet`` hides the process's stderr while TensorFlow is imported: by
  ``edge.keras_setup``, and by an import hook (``configure``) for the libraries that import
  TensorFlow on their own first (coremltools, tf2onnx).
* Python logging of tensorflow, absl, coremltools, onnxruntime, tf2onnx (and friends) at ERROR.
  Among them coremltools' "Failed to load _MLModelProxy" (its macOS-only native module is absent
  on Linux, which is why edge verifies Core ML with its own executor) and its version notes
  ("scikit-learn ... is not supported", "TensorFlow ... has not been tested"): edge uses neither
  coremltools' scikit-learn converters nor its TensorFlow 1 path (its k-means palettization does
  import scikit-learn, which is why pyproject.toml pins it).
* onnxruntime's quantizer logs through the *root* logger ("Axis 1 is out-of-range for weight
  ... with rank 1": per-channel quantization skipping 1-D BatchNorm vectors, which are correctly
  kept per-tensor), so a filter on the root logger drops WARNING-and-below records that come from
  these packages' files.
* Python warnings raised inside these packages.

``verbose=True`` undoes all of it and sets ``TF_CPP_MIN_LOG_LEVEL=0``. A library user who never
calls ``configure`` gets only the environment default (level 3 unless already set) and
TensorFlow's own logger at ERROR (``edge.keras_setup``).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator

# Packages whose logs, warnings and import-time chatter edge silences by default.
NOISY = ("tensorflow", "tf_keras", "keras", "absl", "coremltools", "onnxruntime", "onnx", "tf2onnx",
         "tensorflow_model_optimization", "ai_edge_litert", "h5py", "google.protobuf")
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LEVEL = "3"  # 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR (C++ side only)

_state = {"verbose": False, "configured": False}
_SAVED_LEVELS: dict[str, int] = {}
_WARNING_MODULES = "(" + "|".join(re.escape(p) for p in NOISY) + r")(\.|$)"  # warnings raised inside them


def is_verbose() -> bool:
    return bool(_state["verbose"])


def setup_env() -> None:
    """Set the environment TensorFlow reads when it is imported (called before that import)."""
    if _state["verbose"]:
        os.environ[TF_LOG_ENV] = "0"  # -v wins over an inherited setting
    else:
        os.environ.setdefault(TF_LOG_ENV, QUIET_TF_LEVEL)


class _FromNoisyPackage(logging.Filter):
    """Drops WARNING-and-below records logged (through any logger) from a noisy package's files."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        path = (record.pathname or "").replace("\\", "/")
        return not any(f"/{package.replace('.', '/')}/" in path for package in NOISY)


_ROOT_FILTER = _FromNoisyPackage()


def configure(verbose: bool = False) -> None:
    """Silence third-party logs (default) or let them all through (``verbose``). Idempotent."""
    _state["verbose"], _state["configured"] = verbose, True
    root = logging.getLogger()
    if verbose:
        os.environ[TF_LOG_ENV] = "0"
        for name, level in _SAVED_LEVELS.items():
            logging.getLogger(name).setLevel(level)
        _SAVED_LEVELS.clear()
        root.removeFilter(_ROOT_FILTER)
        _drop_warning_filter()
        _absl_verbosity("info")
        return
    setup_env()
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    for name in NOISY:
        logger = logging.getLogger(name)
        _SAVED_LEVELS.setdefault(name, logger.level)
        logger.setLevel(logging.ERROR)
    if _ROOT_FILTER not in root.filters:
        root.addFilter(_ROOT_FILTER)
    _drop_warning_filter()
    warnings.filterwarnings("ignore", module=_WARNING_MODULES)  # first in line, ahead of older filters
    _absl_verbosity("error")


def _drop_warning_filter() -> None:
    if any(_is_ours(f) for f in warnings.filters):
        warnings.filters[:] = [f for f in warnings.filters if not _is_ours(f)]
        getattr(warnings, "_filters_mutated", lambda: None)()  # the filter cache (CPython)


def _is_ours(entry) -> bool:
    module = entry[3]
    return entry[0] == "ignore" and getattr(module, "pattern", module) == _WARNING_MODULES


def _absl_verbosity(level: str) -> None:
    """absl's Python logging, when absl is already imported (it is imported by TensorFlow)."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        with contextlib.suppress(Exception):
            absl_logging.set_verbosity(level)


@contextlib.contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Hide what native code writes to the process's stderr (file descriptor 2) for a moment.

    Used around ``import tensorflow``: its absl lines are written before any log level applies.
    Nothing is hidden when verbose, when stderr has no file descriptor (some notebooks) or when it
    cannot be duplicated. An exception raised inside still propagates (and prints) normally.
    """
    if _state["verbose"]:
        yield
        return
    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else 2
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both an OSError and a ValueError
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` like the other finders do, but runs its ``__init__`` inside
    ``native_stderr_quiet`` (whoever imports it first). Inert once TensorFlow is imported or when
    verbose."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or _state["verbose"]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


class _QuietLoader(importlib.abc.Loader):
    """Delegates to the real loader; ``exec_module`` with native stderr hidden."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with native_stderr_quiet():
            self._loader.exec_module(module)

    def __getattr__(self, name: str):  # get_resource_reader, is_package, get_data, ...
        return getattr(self._loader, name)
