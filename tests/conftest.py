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


def run_edge(*args: str, timeout: float = 600, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``edge`` CLI in a fresh process (as a user would); returns the completed process."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


@pytest.fixture(scope="session")
def edge_cli():
    """The ``run_edge`` helper as a fixture (test modules are imported without sys.path tricks)."""
    return run_edge
