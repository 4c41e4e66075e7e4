"""``edge predict`` / ``edge.predict``: every model kind edge makes, folders, bad images, JSON/CSV.

The model is a hand-built "colour" classifier: mean of each RGB channel -> softmax, so a mostly red
image is "red" (like tests/test_bench.py's ONNX models). It is saved as a ``.keras`` with
``spec.json`` beside it in seconds; the slow test exports it to every format and checks that
predict agrees with the Keras model and with ``edge bench`` on the same images.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.errors import EdgeError

LABELS = ["red", "green", "blue"]
COLOURS = {"red": (200, 30, 20), "green": (20, 190, 40), "blue": (30, 20, 210)}
SIZE = 8  # conftest.COLOUR_SIZE


@pytest.fixture(scope="module")
def case(tmp_path_factory, make_colour_model, make_colour_images):
    root = tmp_path_factory.mktemp("predict")
    model = make_colour_model(root / "run")
    return root, model, make_colour_images(root / "photos")


# ---------------------------------------------------------------------------------------------- the API

def test_predict_keras_folder_top_k(case):
    from edge import predict

    _, model, photos = case
    result = predict(model, photos, top_k=2)
    assert result.labels == LABELS and result.input_size == (SIZE, SIZE) and result.top_k == 2
    assert len(result.images) == 9 and not result.skipped
    for image in result.images:
        truth = Path(image.path).parent.name
        assert image.top.label == truth
        assert len(image.predictions) == 2 and image.predictions[0].score >= image.predictions[1].score
    assert result.images[0].path.endswith("blue/0.png")  # folders: sorted, recursively
    assert predict(model.parent, photos / "red" / "0.png", top_k=99).top_k == 3  # run dir; k capped at the labels


def test_unreadable_images_are_named_and_skipped(case, tmp_path):
    from edge import predict

    _, model, photos = case
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    result = predict(model, [photos / "green" / "1.png", tmp_path / "broken.jpg", tmp_path / "empty.png"])
    assert [i.top.label for i in result.images] == ["green"]
    assert [Path(s.path).name for s in result.skipped] == ["broken.jpg", "empty.png"]
    assert all(s.reason for s in result.skipped)


def test_heic_photo(case, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from edge import predict

    _, model, _ = case
    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[...] = COLOURS["blue"]
    heif = pillow_heif.from_bytes(mode="RGB", size=(48, 32), data=pixels.tobytes())
    heif.save(tmp_path / "IMG_0001.HEIC", quality=95)
    (only,) = predict(model, tmp_path / "IMG_0001.HEIC").images
    assert only.top.label == "blue"


def test_json_and_csv(case):
    from edge import predict

    _, model, photos = case
    result = predict(model, photos / "red", top_k=3)
    data = json.loads(result.to_json())
    first = data["images"][0]
    assert set(first) == {"path", "predictions"}
    assert first["predictions"][0] == {"label": "red", "score": pytest.approx(result.images[0].top.score)}
    assert data["labels"] == LABELS and data["input_size"] == [SIZE, SIZE] and data["skipped"] == []
    rows = list(csv.reader(io.StringIO(result.to_csv())))
    assert rows[0] == ["path", "label_1", "score_1", "label_2", "score_2", "label_3", "score_3", "error"]
    assert len(rows) == 4 and rows[1][1] == "red"


def test_label_count_must_match_output_width(tmp_path, make_colour_model, make_colour_images):
    from edge import predict

    model = make_colour_model(tmp_path / "bad", labels=["red", "green"], outputs=3)
    make_colour_images(tmp_path / "photos", per_class=1)
    with pytest.raises(EdgeError, match="outputs 3 scores per image but its labels name 2 classes") as caught:
        predict(model, tmp_path / "photos")
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("case_name", ["missing_model", "unknown_suffix", "folder", "missing_image", "no_images",
                                       "bad_k"])
def test_bad_input_one_sentence(case, tmp_path, case_name):
    from edge import predict

    _, model, photos = case
    args, expect = {
        "missing_model": ((tmp_path / "nope.tflite", photos), "does not exist"),
        "unknown_suffix": ((photos / "red" / "0.png", photos), "Cannot tell the model format"),
        "folder": ((tmp_path, photos), "is a folder, not a model"),
        "missing_image": ((model, tmp_path / "nope.jpg"), "Image .* does not exist"),
        "no_images": ((model, tmp_path), "holds no image files"),
        "bad_k": ((model, photos), "--top-k"),
    }[case_name]
    kwargs = {"top_k": 0} if case_name == "bad_k" else {}
    with pytest.raises(EdgeError, match=expect) as caught:
        predict(*args, **kwargs)
    assert len(str(caught.value).splitlines()) == 1


def test_foreign_onnx_needs_labels_and_agrees_with_bench(tmp_path, make_colour_onnx):
    """A model without edge metadata, through --labels; predict's top-1 gives bench's accuracy."""
    from edge import predict
    from edge.bench import bench

    model = make_colour_onnx(tmp_path / "colour.onnx")
    data = tmp_path / "data"
    for folder, shown in {"red": ["red", "red", "green"], "green": ["green", "blue"], "blue": ["blue"]}.items():
        (data / folder).mkdir(parents=True)
        for i, colour in enumerate(shown):
            Image.new("RGB", (8, 8), COLOURS[colour]).save(data / folder / f"{i}.png")
    with pytest.raises(EdgeError, match="pass --labels"):
        predict(model, data)
    result = predict(model, data, labels=LABELS)
    right = sum(Path(i.path).parent.name == i.top.label for i in result.images)
    benched = bench([model], data=data, labels=LABELS, measure_latency=False, quiet=True)
    assert benched.rows[0].accuracy == pytest.approx(right / len(result.images)) and right == 4


# ---------------------------------------------------------------------------------------------- the CLI

def test_cli_table_csv_and_json_stdout(case, tmp_path, edge_cli):
    root, model, photos = case
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    done = edge_cli("predict", str(model), str(photos), str(tmp_path / "bad.jpg"), "--top-k", "2", "--csv",
                    str(tmp_path / "p.csv"), "--json", "-", columns=80)
    assert done.returncode == 1, done.stderr  # one image could not be read
    data = json.loads(done.stdout)  # stdout is the JSON document and nothing else
    assert len(data["images"]) == 9 and data["skipped"][0]["path"].endswith("bad.jpg")
    assert "skipped" in done.stderr and "bad.jpg" in done.stderr
    assert (tmp_path / "p.csv").read_text().count("\n") == 11
    table = edge_cli("predict", str(model), str(photos / "blue"), columns=80)
    assert table.returncode == 0, table.stderr
    assert "blue/0.png" in table.stdout and re.search(r"blue \d+\.\d%", table.stdout) and "…" not in table.stdout
    quiet = edge_cli("-q", "predict", str(model), str(photos / "blue" / "0.png"))
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "blue" in quiet.stdout and "classes" not in quiet.stdout  # the result only


# ---------------------------------------------------------------------------------------------- every format

@pytest.mark.slow
def test_every_exported_format_agrees_with_keras(case, tmp_path, edge_cli):
    """Export the colour model to TFLite, ONNX and Core ML (edge export --json -) and predict with each."""
    from edge import formats, predict

    root, model, photos = case
    kinds = "fp32,fp16,dynamic,int8,palettize8"  # each format takes the kinds it has
    done = edge_cli("export", str(model), "--format", ",".join(formats.names()), "--quantize", kinds,
                    "--data", str(photos), "--out", str(tmp_path / "export"), "--max-drop", "100", "--json", "-")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    artifacts = [tmp_path / "export" / e["file"] for e in report["entries"] if e["status"] == "passed"]
    assert {formats.for_path(a).name for a in artifacts} == set(formats.names()) and len(artifacts) >= 9
    reference = predict(model, photos, top_k=3)
    for artifact in artifacts:
        result = predict(artifact, photos, top_k=3)
        assert result.labels == LABELS, artifact
        for ours, theirs in zip(result.images, reference.images):
            assert ours.top.label == theirs.top.label, artifact
            assert ours.top.score == pytest.approx(theirs.top.score, abs=0.05), artifact
    bench = edge_cli("bench", str(tmp_path / "export"), "--data", str(photos), "--no-latency", "--json", "-",
                     columns=80)
    assert bench.returncode == 0, bench.stderr
    assert all(m["accuracy"] == 1.0 for m in json.loads(bench.stdout)["models"])
