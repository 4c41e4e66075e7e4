"""Core ML options: deployment targets, iOS 18 grouped palettes and block-wise int4, and what Xcode
shows (author, license, version, preview type) -- on a tiny hand-made network, no training."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.export.plan import ExportSettings, make_plan


def test_a_kind_the_target_cannot_hold_is_refused_before_any_work():
    with pytest.raises(EdgeError, match="int4 needs --coreml-target ios18"):
        make_plan(ExportSettings(formats=("coreml",), quantize=("int4",)))
    with pytest.raises(EdgeError, match="--coreml-target must be one of ios16, ios17, ios18"):
        make_plan(ExportSettings(formats=("coreml",), coreml_target="ios15"))
    plan = make_plan(ExportSettings(formats=("coreml",), quantize=("int4", "palettize4"), coreml_target="ios18"))
    assert [k for _, k in plan.pairs] == ["int4", "palettize4"]


@pytest.fixture(scope="module")
def small_net():
    from edge import contract
    from edge.keras_setup import keras
    from edge.spec import ModelSpec, Normalization

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name=contract.INPUT_NAME)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name=contract.PREPROCESS_LAYER)(inputs)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Activation("softmax", name=contract.OUTPUT_NAME)(keras.layers.Dense(3)(x))
    model = keras.Model(inputs, out)
    spec = ModelSpec(name="small", backbone="none", labels=["a", "b", "c"], input_size=(16, 16),
                     normalization=Normalization(), weights="none")
    images = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3)).astype(np.uint8)
    return model, spec, images, model.predict(images.astype(np.float32), verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind, target, constexpr, grouping", [
    ("palettize4", "ios16", "constexpr_lut_to_dense", "per tensor"),
    ("palettize4", "ios18", "constexpr_lut_to_dense", "per group of 16"),
    ("int4", "ios18", "constexpr_blockwise_shift_scale", "per block of 32"),
])
def test_ios18_compression_runs_in_the_executor(small_net, tmp_path, kind, target, constexpr, grouping):
    from edge.export.formats import coreml
    from edge.formats import ExportOptions

    model, spec, images, reference = small_net
    options = ExportOptions(coreml_target=target, extra={"weight_threshold": 128})
    artifact = coreml.export(model, spec, kind, tmp_path / f"m_{kind}.mlpackage", None, options)
    assert grouping in artifact.details["compression"]
    assert artifact.details["minimum_deployment_target"] == coreml.TARGETS[target]
    predictor = coreml.load(artifact.path)
    from edge.runtimes.mil.executor import MilExecutor

    assert constexpr in MilExecutor(artifact.path).op_types
    probs = predictor(images)
    assert np.abs(probs - reference).max() < 0.02 and (probs.argmax(1) == reference.argmax(1)).mean() >= 5 / 6


@pytest.mark.slow
def test_xcode_sees_the_users_author_license_version_and_preview(small_net, tmp_path):
    import coremltools as ct

    from edge.export.formats import coreml
    from edge.formats import ExportOptions

    model, spec, *_ = small_net
    default = coreml.export(model, spec, "fp16", tmp_path / "d.mlpackage", None, ExportOptions())
    loaded = ct.models.MLModel(str(default.path), skip_model_load=True)
    assert loaded.author == coreml.default_author() and loaded.author != "edge"
    assert loaded.version == spec.model_version
    assert loaded.user_defined_metadata[coreml.PREVIEW_TYPE_KEY] == "imageClassifier"
    chosen = coreml.export(model, spec, "fp16", tmp_path / "c.mlpackage", None,
                           ExportOptions(author="Ada Lovelace", license="CC-BY-4.0", version="2.1"))
    loaded = ct.models.MLModel(str(chosen.path), skip_model_load=True)
    assert (loaded.author, loaded.license, loaded.version) == ("Ada Lovelace", "CC-BY-4.0", "2.1")
