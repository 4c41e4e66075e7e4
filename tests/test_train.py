"""End-to-end training: the run directory, its spec and metrics, and a model that learned."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edge.rundir import open_run
from edge.spec import ModelSpec

pytestmark = pytest.mark.slow


def test_trained_model_beats_chance_and_predicts_several_classes(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.7, metrics["test"]["accuracy"]  # chance is 0.2
    cm = np.array(metrics["test"]["confusion_matrix"])
    assert (cm.sum(axis=0) > 0).sum() >= 3  # predictions spread over several classes


def test_run_directory_holds_everything_later_steps_need(trained_run):
    expected = ["model.keras", "spec.json", "labels.txt", "metrics.json", "history.csv", "confusion_matrix.png",
                "training_curves.png", "report.json", "split/train.csv", "split/val.csv", "split/test.csv"]
    for name in expected:
        assert (trained_run / name).exists(), name
    assert any((trained_run / "logs").rglob("events.out.tfevents.*")), "no TensorBoard logs"
    assert not (trained_run / "checkpoints").exists(), "checkpoints are removed from a finished run"
    for png in ("confusion_matrix.png", "training_curves.png"):
        assert (trained_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_spec_is_the_single_source_of_truth(trained_run):
    spec = ModelSpec.load(trained_run)
    assert spec.labels == ["circle", "cross", "square", "star", "triangle"]
    assert (trained_run / "labels.txt").read_text().split() == spec.labels
    assert spec.input_size == (64, 64)
    assert spec.backbone == "mobilenet_v2" and spec.alpha == 0.35
    assert spec.normalization.mean == (127.5,) * 3 and spec.normalization.std == (127.5,) * 3
    assert spec.resize == "stretch-bilinear"
    assert spec.seed == 0 and spec.split["counts"] == {"train": 320, "val": 40, "test": 40}
    assert {"tensorflow", "tf-keras", "edge"} <= set(spec.versions)
    assert spec.training["epochs"] == 12


def test_split_files_are_stratified_and_disjoint(trained_run):
    run = open_run(trained_run)
    splits = {name: run.samples(name) for name in ("train", "val", "test")}
    paths = [set(s.path for s in samples) for samples in splits.values()]
    assert not (paths[0] & paths[1]) and not (paths[0] & paths[2]) and not (paths[1] & paths[2])
    for name in ("val", "test"):
        assert sorted(np.bincount([s.label for s in splits[name]])) == [8, 8, 8, 8, 8]
    with (trained_run / "split" / "test.csv").open() as fh:
        assert next(csv.reader(fh)) == ["path", "label"]


def test_model_contains_its_preprocessing(trained_run):
    """The saved model takes raw 0..255 pixels: feeding the same image twice as float gives the same
    probabilities as the metrics computed during training (no outside normalization needed)."""
    from edge.data.images import load_images
    from edge.keras_setup import keras

    run = open_run(trained_run)
    model = keras.models.load_model(run.model_path)
    samples = run.samples("test")
    images = load_images([s.path for s in samples], run.spec.input_size).astype(np.float32)
    probs = model.predict(images, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    accuracy = float(np.mean(probs.argmax(1) == [s.label for s in samples]))
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])
    assert model.get_layer("preprocess") is not None
