"""Shared fixtures: a synthetic dataset and one small trained run, made once per test session.

Nothing is downloaded: data comes from edge's own synthetic generator and models train from
scratch (``weights="none"``). Tests that use ../shared skip cleanly when it is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"
FLOWERS_MINI = SHARED / "data" / "flowers-mini"
MOBILENET_V2_WEIGHTS = SHARED / "keras_home" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

# The small model every export/bench test shares: trained once, from scratch, on synthetic shapes.
TRAINED_RUN_OPTIONS = dict(backbone="mobilenet_v2", alpha=0.35, weights="none", image_size=64, epochs=12,
                           batch_size=16, learning_rate=3e-3, patience=6, seed=0)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """5 classes x 80 synthetic images (96 px JPEGs)."""
    from edge.data.synth import synth

    out = tmp_path_factory.mktemp("synth") / "shapes"
    synth(out, classes=5, per_class=80, image_size=96, seed=0)
    return out


@pytest.fixture(scope="session")
def trained_run(synth_data, tmp_path_factory) -> Path:
    """A finished run directory: small MobileNetV2 (alpha 0.35, 64 px) trained on ``synth_data``."""
    from edge.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "shapes"
    train(synth_data, run_dir=run_dir, **TRAINED_RUN_OPTIONS)
    return run_dir


# The export every export/bench/Core ML/iOS test shares: every kind of every format, verified on all
# the synthetic images (one image of the run's small held-out split would be 4 points).
EXPORT_SET_MAX_DROP = 3.0


@pytest.fixture(scope="session")
def export_set(trained_run, synth_data, tmp_path_factory):
    """(ExportReport, export folder) of ``trained_run`` in TFLite, ONNX and Core ML, every default kind plus
    fp32/fp16/dynamic/int8 where a format has them."""
    from edge import export

    out = tmp_path_factory.mktemp("export_set") / "export"
    report = export(trained_run, formats=("tflite", "onnx", "coreml"), quantize=("fp32", "fp16", "dynamic", "int8"),
                    out=out, calibration_count=48, data=synth_data, max_drop=EXPORT_SET_MAX_DROP, quiet=True)
    return report, out


@pytest.fixture(scope="session")
def mediapipe_python() -> Path:
    """The Python of MediaPipe's own venv (it cannot share edge's: absl-py pins), found as ``edge bench``
    finds it (``EDGE_MEDIAPIPE_PYTHON``, else the repository's .venv-mediapipe); skips, saying how to make
    it, when it is absent."""
    from edge.runtimes.mediapipe import locate

    found = locate(cwd=Path(__file__).resolve().parents[1])
    if found.python is None:
        pytest.skip(f"MediaPipe Tasks runs in its own venv: {found.note}")
    return found.python


def run_edge(*args: str, timeout: float = 600, env: dict | None = None, cwd: Path | None = None,
             columns: int = 200) -> subprocess.CompletedProcess:
    """Run the ``edge`` CLI in a fresh process, as a user would (their shell has no TF log variable:
    edge chooses the level itself); returns the completed process. The one CLI runner of the suite."""
    full_env = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    if "TF_CPP_MIN_LOG_LEVEL" not in (env or {}):
        full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


@pytest.fixture(scope="session")
def edge_cli():
    """The ``run_edge`` helper as a fixture (test modules are imported without sys.path tricks)."""
    return run_edge


# Fixtures that train or export a model: any test using one is slow, whatever its module says.
SLOW_FIXTURES = {"trained_run", "export_set"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# --- tiny hand-made models: fast tests of export, bench and predict without training -----------

COLOURS = {"red": (200, 30, 20), "green": (20, 190, 40), "blue": (30, 20, 210)}
COLOUR_SIZE = 8


def colour_keras(folder: Path, labels=tuple(COLOURS), outputs: int | None = None) -> Path:
    """``folder/model.keras`` (raw pixels -> channel means -> softmax, built like edge.train's graph:
    ``image`` input, ``preprocess`` Rescaling, ``probabilities`` output) and its ``spec.json``."""
    import numpy as np

    from edge import contract
    from edge.keras_setup import keras
    from edge.spec import ModelSpec, Normalization

    n = outputs or len(labels)
    inputs = keras.Input((COLOUR_SIZE, COLOUR_SIZE, 3), name=contract.INPUT_NAME)
    x = keras.layers.Rescaling(1 / 255.0, name=contract.PREPROCESS_LAYER)(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    dense = keras.layers.Dense(n, name="logits")
    probs = keras.layers.Activation("softmax", name=contract.OUTPUT_NAME)(dense(x))
    model = keras.Model(inputs, probs)
    weights = np.zeros((3, n), np.float32)
    weights[:, : min(n, 3)] = 12.0 * np.eye(3, dtype=np.float32)[:, : min(n, 3)]
    dense.set_weights([weights, np.zeros(n, np.float32)])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    spec = ModelSpec(name="colours", backbone="none", labels=list(labels), input_size=(COLOUR_SIZE, COLOUR_SIZE),
                     normalization=Normalization(mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0)), weights="none")
    spec.save(folder)
    return folder / "model.keras"


def colour_images(root: Path, per_class: int = 3, fmt: str = "png") -> Path:
    """``root/<colour>/<i>.<fmt>``: noisy images of each colour (8-40 px, not square)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, rgb in COLOURS.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = 8 + 8 * i, 12 + 4 * i
            pixels = np.clip(np.array(rgb) + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.{fmt}")
    return root


@pytest.fixture(scope="session")
def colour_case(tmp_path_factory):
    """(root, model.keras of a hand-made colour classifier with its spec, a class-folder image set)."""
    root = tmp_path_factory.mktemp("colours")
    return root, colour_keras(root / "run"), colour_images(root / "photos")


@pytest.fixture(scope="session")
def make_colour_model():
    """``colour_keras`` for tests that need a variant (other labels, a wrong output width)."""
    return colour_keras


@pytest.fixture(scope="session")
def make_colour_images():
    return colour_images


def colour_onnx(path: Path) -> Path:
    """A model without edge metadata (hand-written ONNX): uint8 (N, 4, 4, 3) -> the three channel means."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x", "axes"], ["scores"], keepdims=0)]
    graph = helper.make_graph(nodes, "colour", [helper.make_tensor_value_info("image", TensorProto.UINT8, [None, 4, 4, 3])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])],
                              initializer=[numpy_helper.from_array(np.array([1, 2], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def make_colour_onnx():
    return colour_onnx
