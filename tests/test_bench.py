"""edge bench on hand-made tiny ONNX models (no TensorFlow, seconds): numbers checked by hand.

The "colour" model outputs the mean of each RGB channel (softmaxed by bench, since they are not
probabilities), so a solid red image is classified "red". A second model swaps green and blue.
On a folder with known images, accuracy, per-class precision/recall, the confusion matrix,
agreement and drop are all computable by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.bench import bench, latency, report
from edge.bench.runner import _align, parse_threads
from edge.errors import EdgeError

LABELS = ["red", "green", "blue"]


# ---------------------------------------------------------------------------------------------- helpers

def colour_model(path: Path, swap_green_blue: bool = False, size: int = 4, float_input: bool = False,
                 metadata: dict[str, str] | None = None) -> Path:
    """uint8 (N, size, size, 3) -> per-channel mean (N, 3) [optionally G and B swapped]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    perm = np.eye(3, dtype=np.float32)
    if swap_green_blue:
        perm = perm[:, [0, 2, 1]]
    in_type = TensorProto.FLOAT if float_input else TensorProto.UINT8
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "perm"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "colour",
        [helper.make_tensor_value_info("image", in_type, [None, size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])],
        initializer=[numpy_helper.from_array(np.array([1, 2], np.int64), "axes"), numpy_helper.from_array(perm, "perm")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


COLOURS = {"red": (200, 10, 10), "green": (10, 200, 10), "blue": (10, 10, 200)}


def colour_folder(root: Path, layout: dict[str, list[str]]) -> Path:
    """``layout``: folder name -> the colours of the images inside it."""
    for folder, colours in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, colour in enumerate(colours):
            Image.new("RGB", (8, 8), COLOURS[colour]).save(root / folder / f"{i}.png")
    return root


# Truth (folder) -> what the image really shows. The colour model predicts what it shows.
#   red:   red, red, red, green         -> 3 of 4 right, one predicted green
#   green: green, green, blue           -> 2 of 3 right, one predicted blue
#   blue:  blue, blue, blue             -> 3 of 3 right
LAYOUT = {"red": ["red", "red", "red", "green"], "green": ["green", "green", "blue"], "blue": ["blue", "blue", "blue"]}


@pytest.fixture(scope="module")
def colour_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    data = colour_folder(root / "data", LAYOUT)
    good = colour_model(root / "colour.onnx")
    swapped = colour_model(root / "swapped.onnx", swap_green_blue=True)
    return root, data, good, swapped


def quick(**kw):
    return dict(warmup=1, runs=5, time_budget=0.5, **kw)


# ---------------------------------------------------------------------------------------------- latency

def test_percentile_matches_linear_interpolation():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert latency.percentile(values, 50) == 3.0
    assert latency.percentile(values, 0) == 1.0 and latency.percentile(values, 100) == 5.0
    assert latency.percentile(values, 90) == pytest.approx(4.6)  # rank 3.6 between 4 and 5
    assert latency.percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    rng = np.random.default_rng(0)
    sample = rng.exponential(size=101)
    for q in (50, 90, 99):
        assert latency.percentile(sample, q) == pytest.approx(np.percentile(sample, q))
    with pytest.raises(ValueError):
        latency.percentile(values, 101)


def test_summarize_stats_in_ms():
    stats = latency.summarize([0.001, 0.002, 0.003, 0.004], batch=2)
    assert stats.runs == 4 and stats.batch == 2
    assert stats.mean_ms == pytest.approx(2.5) and stats.min_ms == pytest.approx(1.0) and stats.max_ms == pytest.approx(4.0)
    assert stats.p50_ms == pytest.approx(2.5) and stats.p90_ms == pytest.approx(3.7) and stats.p99_ms == pytest.approx(3.97)
    assert stats.std_ms == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert stats.throughput_ips == pytest.approx(2 * 1000 / 2.5)


def test_time_calls_stops_at_count_or_budget():
    calls = []
    durations = latency.time_calls(lambda: calls.append(1), warmup=3, runs=7, budget_s=60)
    assert len(durations) == 7 and len(calls) == 10  # warm-up runs are not timed
    import time

    durations = latency.time_calls(lambda: time.sleep(0.02), warmup=0, runs=1000, budget_s=0.15, min_runs=2)
    assert 2 <= len(durations) <= 12


def test_parse_threads():
    assert parse_threads("1,2") == [1, 2]
    assert parse_threads("2,2,1") == [2, 1]
    assert parse_threads(None)[0] >= 1
    for bad in ("0", "a,b", "-1"):
        with pytest.raises(EdgeError):
            parse_threads(bad)


def test_reference_reordered_to_model_labels():
    probs = np.array([[0.7, 0.2, 0.1]])
    assert _align(probs, ["a", "b", "c"], ["a", "b", "c"]) is probs
    assert _align(probs, ["a", "b", "c"], ["c", "a", "b"]).tolist() == [[0.1, 0.7, 0.2]]
    assert _align(probs, ["a", "b", "c"], ["a", "b", "x"]) is None


# ---------------------------------------------------------------------------------------------- accuracy by hand

def test_accuracy_per_class_and_confusion_by_hand(colour_case):
    _, data, good, _ = colour_case
    result = bench([good], data=data, labels=LABELS, **quick())
    (row,) = result.rows
    assert row.count == 10
    assert row.accuracy == pytest.approx(8 / 10)
    assert row.top5 is None  # 3 classes: top-5 would always be 100%
    # data/ folders scan in sorted order (blue, green, red) but rows/cols follow the model's labels.
    assert row.confusion_matrix == [[3, 1, 0], [0, 2, 1], [0, 0, 3]]
    assert row.per_class["red"] == pytest.approx({"precision": 1.0, "recall": 0.75, "f1": 2 * 0.75 / 1.75, "support": 4})
    assert row.per_class["green"]["precision"] == pytest.approx(2 / 3)
    assert row.per_class["green"]["recall"] == pytest.approx(2 / 3)
    assert row.per_class["blue"]["precision"] == pytest.approx(3 / 4)
    assert row.per_class["blue"]["recall"] == pytest.approx(1.0)
    assert row.agreement is None and row.drop_pts is None  # no reference given or found
    assert row.p50_ms is not None and row.p50_ms > 0 and row.runs >= 5
    assert "onnxruntime" in row.runtime and row.threads >= 1


def test_agreement_and_drop_against_reference(colour_case):
    _, data, good, swapped = colour_case
    result = bench([swapped], data=data, reference=good, labels=LABELS, max_drop=40.0, **quick())
    (row,) = result.rows
    # swapped sees green as blue and blue as green. Folder red: 3 red-looking -> red (right), the
    # green-looking one -> blue (wrong); folder green: 2 green-looking -> blue (wrong), the
    # blue-looking one -> green (right, by accident); folder blue: 3 -> green (wrong). 4/10 right.
    assert row.accuracy == pytest.approx(4 / 10)
    assert row.reference_accuracy == pytest.approx(8 / 10)
    assert row.drop_pts == pytest.approx(40.0)
    assert row.agreement == pytest.approx(3 / 10)  # only the 3 red-looking images get the same class
    assert row.passed is True  # 40 <= 40
    strict = bench([swapped], data=data, reference=good, labels=LABELS, max_drop=39.9, measure_latency=False)
    assert strict.rows[0].passed is False and not strict.ok
    assert strict.rows[0].latency_note == "not measured" and strict.rows[0].p50_ms is None


def test_outputs_written(colour_case, tmp_path):
    _, data, good, swapped = colour_case
    result = bench([good, swapped], data=data, reference=good, labels=LABELS, **quick())
    written = report.write_all(result, tmp_path / "out", tmp_path / "extra.json")
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved == json.loads((tmp_path / "extra.json").read_text())
    assert [m["path"] for m in saved["models"]] == [str(good), str(swapped)]
    for key in ("path", "format", "runtime", "threads", "accuracy", "top5", "agreement", "drop_pts", "p50_ms",
                "p90_ms", "p99_ms", "mean_ms", "size_bytes"):
        assert key in saved["models"][0], key
    assert saved["models"][0]["agreement"] == 1.0 and saved["models"][1]["drop_pts"] == pytest.approx(40.0)
    md = (tmp_path / "out" / "bench.md").read_text()
    assert md.startswith("| model | runtime | threads |") and "swapped.onnx" in md and "+40.00" in md
    png = written["chart"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


# ---------------------------------------------------------------------------------------------- bad input (CLI)

def _fails_with(edge_cli, *args, expect: str) -> str:
    done = edge_cli("bench", *args)
    message = done.stderr.strip()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in message and expect in message, message
    assert len(message.splitlines()) <= 3  # one sentence (rich may wrap it)
    return message


def test_bad_inputs_one_sentence_exit_2(colour_case, tmp_path, edge_cli):
    _, data, good, _ = colour_case
    _fails_with(edge_cli, str(tmp_path / "nope.tflite"), "--data", str(data), expect="does not exist")
    _fails_with(edge_cli, str(good), "--data", str(data), "--labels", "red,green,purple", expect="does not know: blue")


@pytest.mark.parametrize("case", ["missing", "extension", "not_onnx", "not_tflite", "empty_data", "unknown_label",
                                  "no_metadata", "float_no_norm", "no_data", "bad_threads"])
def test_bad_inputs(colour_case, tmp_path, case):
    _, data, good, _ = colour_case
    kwargs = dict(data=data, labels=LABELS, measure_latency=False)
    if case == "missing":
        model, expect = tmp_path / "nope.tflite", "does not exist"
    elif case == "extension":
        model, expect = tmp_path / "notes.txt", "Cannot tell the model format"
        model.write_text("hello")
    elif case == "not_onnx":
        model, expect = tmp_path / "fake.onnx", "fake.onnx is not a readable ONNX file"
        model.write_bytes(b"this is not a model at all")
    elif case == "not_tflite":
        model, expect = tmp_path / "fake.tflite", "not a TFLite model"
        model.write_bytes(b"not a flatbuffer either")
    elif case == "empty_data":
        (tmp_path / "empty" / "red").mkdir(parents=True)
        model, expect, kwargs["data"] = good, "No images found", tmp_path / "empty"
    elif case == "unknown_label":
        model, expect, kwargs["labels"] = good, "does not know: blue", ["red", "green", "purple"]
    elif case == "no_metadata":
        model, expect, kwargs["labels"] = good, "carries no edge metadata; pass --labels", None
    elif case == "float_no_norm":
        model, expect = colour_model(tmp_path / "float.onnx", float_input=True), "pass --mean and --std"
    elif case == "no_data":
        model, expect, kwargs["data"] = good, "pass --data DIR", None
    else:
        model, expect, kwargs["threads"] = good, "--threads", "x"
    with pytest.raises(EdgeError, match=expect.replace("(", r"\(")) as caught:
        bench([model], **kwargs)
    assert len(str(caught.value).splitlines()) == 1


def test_input_shape_mismatch(colour_case, tmp_path, edge_cli):
    """An edge-metadata model whose metadata says 8x8 but whose graph takes 4x4 images."""
    from edge import contract
    from edge.spec import ModelSpec, Normalization

    _, data, _, _ = colour_case
    spec = ModelSpec(name="colour", backbone="none", labels=LABELS, input_size=(8, 8), normalization=Normalization())
    model = colour_model(tmp_path / "colour_fp32.onnx", size=4, metadata=contract.artifact_metadata(spec))
    _fails_with(edge_cli, str(model), "--data", str(data), expect="does not accept the 8x8 RGB images")


def test_cli_exit_1_on_drop_and_writes_files(colour_case, tmp_path, edge_cli):
    _, data, good, swapped = colour_case
    done = edge_cli("bench", str(swapped), str(good), "--data", str(data), "--reference", str(good), "--labels",
                    ",".join(LABELS), "--max-drop", "1", "--runs", "5", "--warmup", "1", "--out", str(tmp_path / "o"),
                    "--json", str(tmp_path / "r.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout and "swapped.onnx" in done.stdout
    rows = json.loads((tmp_path / "r.json").read_text())["models"]
    assert [r["passed"] for r in rows] == [False, True]
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"bench.json", "bench.md", "bench.png"}
