"""The pretrained path (cached bottlenecks -> head -> fine-tune), CSV/pre-split training, and the
multi-replica strategy on two logical CPUs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    from edge.data.synth import synth

    out = tmp_path_factory.mktemp("small") / "data"
    synth(out, classes=3, per_class=12, image_size=48, seed=2)
    return out


@pytest.fixture(scope="module")
def fake_pretrained_weights(tmp_path_factory) -> Path:
    """A weights file for a headless MobileNetV2 (alpha 0.35): stands in for ImageNet weights offline.

    Its BatchNormalization statistics are set from a batch of images, as in a trained network, so
    activations neither vanish nor saturate in inference mode and gradients reach the backbone.
    """
    from edge.keras_setup import keras

    path = tmp_path_factory.mktemp("weights") / "mnv2_035_notop.h5"
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    base(np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 3)).astype("float32"), training=True)
    base.save_weights(path)
    return path


def test_pretrained_path_caches_bottlenecks_then_fine_tunes(small_data, fake_pretrained_weights, tmp_path):
    from edge.keras_setup import keras
    from edge.train import train
    from edge.train.model import build_model

    result = train(small_data, run_dir=tmp_path / "run", backbone="mobilenet_v2", alpha=0.35,
                   weights=str(fake_pretrained_weights), image_size=32, epochs=3, fine_tune_epochs=2, batch_size=8)
    assert set(result.history) == {"head", "fine_tune"}
    assert len(result.history["head"]["loss"]) == 3 and len(result.history["fine_tune"]["loss"]) == 2
    assert "views_cache_s" in result.metrics["timings"]  # the fine-tune ran on cached views
    assert set(result.metrics["stages"]) == {"head", "fine_tune"}
    # Frozen layers below the fine-tune point and every BatchNormalization kept their loaded values.
    trained = keras.models.load_model(result.model_path)
    fresh, _ = build_model("mobilenet_v2", 3, 32, weights=str(fake_pretrained_weights), alpha=0.35)
    np.testing.assert_array_equal(trained.get_layer("Conv1").get_weights()[0], fresh.get_layer("Conv1").get_weights()[0])
    for name in ("block_15_expand_BN", "bn_Conv1"):
        for a, b in zip(trained.get_layer(name).get_weights(), fresh.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(trained.get_layer("block_15_expand").get_weights()[0],
                              fresh.get_layer("block_15_expand").get_weights()[0])


def test_csv_and_presplit_inputs_train(small_data, tmp_path):
    from edge.train import train

    rows = ["filename,label"] + [f"{p.relative_to(small_data)},{p.parent.name}" for p in sorted(small_data.rglob("*.jpg"))]
    (small_data.parent / "labels.csv").write_text("\n".join(rows) + "\n")
    result = train(small_data, csv=str(small_data.parent / "labels.csv"), run_dir=tmp_path / "csv", backbone="mobilenet_v2",
                   alpha=0.35, weights="none", image_size=32, epochs=1, batch_size=8)
    assert result.spec.split["layout"] == "csv" and result.spec.labels == ["circle", "square", "triangle"]

    presplit = tmp_path / "presplit"
    for i, p in enumerate(sorted(small_data.rglob("*.jpg"))):
        split = "val" if i % 4 == 0 else "train"
        (presplit / split / p.parent.name).mkdir(parents=True, exist_ok=True)
        (presplit / split / p.parent.name / p.name).write_bytes(p.read_bytes())
    result = train(presplit, run_dir=tmp_path / "pre", backbone="mobilenet_v2", alpha=0.35, weights="none",
                   image_size=32, epochs=1, batch_size=8)
    assert result.spec.split["layout"] == "presplit"
    assert result.spec.split["counts"] == {"train": 27, "val": 9, "test": 0}
    assert "test" not in result.metrics and result.metrics["val"]["count"] == 9


def test_mirrored_strategy_on_two_logical_cpus(small_data, tmp_path, edge_cli):
    """Same multi-replica code path as multi-GPU; a fresh process because devices are fixed at TF start."""
    proc = edge_cli("train", str(small_data), "--run-dir", str(tmp_path / "run"), "--backbone", "mobilenet_v2",
                    "--alpha", "0.35", "--weights", "none", "--image-size", "32", "--epochs", "2", "--batch-size", "8",
                    "--devices", "cpu:2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy over 2 logical CPUs" in proc.stdout
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["training"]["placement"] == "MirroredStrategy over 2 logical CPUs"


def test_strategy_selection_logic(monkeypatch):
    from edge.train import strategy

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}))
    assert strategy._multi_worker_cluster()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}}))
    assert not strategy._multi_worker_cluster()
    monkeypatch.setenv("TF_CONFIG", "{oops")
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match="TF_CONFIG"):
        strategy._multi_worker_cluster()
    monkeypatch.delenv("TF_CONFIG")
    placement = strategy.choose_placement("auto", "auto")  # this machine: CPU, no mixed precision
    assert placement.replicas == 1 and not placement.mixed_precision
    from edge.keras_setup import keras

    strategy._with_precision(strategy.Placement(None, "GPU", 1, True), "on")
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    strategy._with_precision(strategy.Placement(None, "CPU", 1, False), "auto")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_class_weights_auto_only_for_imbalance():
    from edge.train.stages import class_weights

    assert class_weights(np.array([0, 0, 1, 1]), 2, "auto") is None
    weights = class_weights(np.array([0] * 8 + [1] * 2), 2, "auto")
    assert weights[1] == pytest.approx(2.5) and weights[0] == pytest.approx(0.625)
    assert class_weights(np.array([0] * 8 + [1] * 2), 2, "none") is None
