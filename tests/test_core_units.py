"""Small pieces the bigger tests rely on: atomic files, ONNX full-range weights, foreign TFLite
models in bench, and bench's compute floor -- each on tiny hand-made inputs (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.fileio import atomic_path, atomic_write_text, replace

# --- fileio: an interrupted write never shows under the final name ------------------------------


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_atomic_directory_replace(tmp_path):
    final = tmp_path / "m.mlpackage"
    final.mkdir()
    (final / "old").write_text("1")
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("2")
    assert [p.name for p in final.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlpackage"]
    other = tmp_path / "other"
    other.mkdir()
    replace(other, final)
    assert final.is_dir() and not other.exists() and not list(final.iterdir())


# --- ONNX int8: which weights get the full 8-bit range ------------------------------------------


def _graph(first_op: str):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w2")
    m = numpy_helper.from_array(np.ones((4, 2), np.float32), "m")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"]),  # input x: may be negative -> 7-bit
        helper.make_node(first_op, ["c1"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["c2"]),  # after the activation
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "m"], ["y"]),
    ]
    return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[w, w2, m])


def test_full_range_weights_only_behind_non_negative_inputs():
    from edge.export.formats.onnx import full_range_weights

    after_relu = full_range_weights(_graph("Relu"), per_channel=True)
    assert set(after_relu) == {"w2"}  # w1 sees raw (signed) input; Flatten is not known to keep signs
    assert after_relu["w2"] == [{"reduce_range": False, "axis": 0}]
    assert full_range_weights(_graph("Relu"), per_channel=False)["w2"] == [{"reduce_range": False}]
    assert full_range_weights(_graph("Tanh"), per_channel=True) == {}  # tanh can be negative


# --- bench: a TFLite file without edge metadata, described with --labels ------------------------


@pytest.fixture(scope="module")
def foreign_tflite(tmp_path_factory, colour_case):
    """A float TFLite of the colour classifier with no metadata at all, taking (pixel - 0) / 255."""
    from edge.keras_setup import keras, tf

    root, keras_path, photos = colour_case
    model = keras.models.load_model(keras_path, compile=False)
    inner = keras.Model(model.get_layer("features").input, model.output)  # without the Rescaling
    inputs = keras.Input((8, 8, 3))
    bare = keras.Model(inputs, inner(inputs))
    path = tmp_path_factory.mktemp("foreign") / "colours.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(bare).convert())
    return path, photos


def test_foreign_tflite_is_benched_with_user_labels_and_normalization(foreign_tflite):
    from edge.bench import bench

    path, photos = foreign_tflite
    with pytest.raises(EdgeError, match="pass --labels"):
        bench([path], data=photos, measure_latency=False, quiet=True)
    with pytest.raises(EdgeError, match="--mean and --std"):
        bench([path], data=photos, measure_latency=False, labels=["red", "green", "blue"], quiet=True)
    result = bench([path], data=photos, labels=["red", "green", "blue"], mean=(0.0, 0.0, 0.0),
                   std=(255.0, 255.0, 255.0), threads="1", runs=5, warmup=1, time_budget=0.5, quiet=True)
    (row,) = result.rows
    assert row.accuracy == 1.0 and row.p50_ms is not None and row.labels == ["red", "green", "blue"]
    assert "LiteRT" in row.runtime and row.quantize == "fp32"  # the kind read from the tensors
    with pytest.raises(EdgeError, match="outputs 3 scores but --labels names 4"):
        bench([path], data=photos, measure_latency=False, labels=["red", "green", "blue", "cyan"], mean=(0.0,) * 3,
              std=(255.0,) * 3, quiet=True)


# --- bench --floor: latency as a multiple of the measured compute floor -------------------------


def test_floor_reports_flops_and_a_multiple_of_the_compute_floor(colour_case, tmp_path):
    from edge.bench import bench

    root, keras_path, photos = colour_case
    result = bench([keras_path], data=photos, floor=True, threads="1", runs=5, warmup=1, time_budget=0.5, quiet=True,
                   out=tmp_path / "out")
    (row,) = result.rows
    assert result.matmul["1"]["flops_per_s"] > 1e8  # a real matmul measurement, not a constant
    assert row.flops and row.flops > 0 and row.floor_ms > 0
    assert row.x_floor == pytest.approx(row.p50_ms / row.floor_ms)
    data = json.loads(Path(result.files["json"]).read_text())  # bench() wrote its files, as the CLI does
    assert data["models"][0]["x_floor"] == pytest.approx(row.x_floor)
