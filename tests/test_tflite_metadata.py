"""Standard TFLite metadata and edge's key/values written into .tflite files, read back.

The models are tiny classifiers shaped like edge's (raw-pixel float input "image", baked-in
Rescaling, softmax output), converted to float, full-int8 with uint8 I/O and full-int8 with int8
I/O. The MediaPipe tests run MediaPipe Tasks in a venv of its own (``make mediapipe-venv``; it
cannot share a resolution with tensorflow-model-optimization) through the consumer script edge bench
ships (``edge.runtimes.mediapipe``): on pixels, and on photo files MediaPipe decodes itself.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.contract import KEY_SOURCE_RUN, artifact_metadata, spec_from_metadata
from edge.errors import EdgeError
from edge.export.formats import tflite_metadata_schema as schema
from edge.export.formats.tflite_metadata import (
    LABELS_FILE,
    STANDARD_METADATA_NAME,
    add_metadata,
    read_metadata,
    read_standard_metadata,
)
from edge.spec import ModelSpec, Normalization

SIZE = 16
LABELS = ["cat", "dog", "bird"]
KINDS = ["float", "uint8", "int8"]


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec(
        name="pets",
        backbone="tiny",
        labels=list(LABELS),
        input_size=(SIZE, SIZE),
        normalization=Normalization(mean=(120.0, 115.0, 100.0), std=(60.0, 61.0, 62.0)),
        model_version="3",
    )


@pytest.fixture(scope="module")
def converted(spec) -> dict[str, bytes]:
    """Converter output (no metadata yet) per input kind."""
    from edge.keras_setup import keras, tf

    keras.utils.set_random_seed(0)
    norm = spec.normalization
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    rescale = keras.layers.Rescaling(list(norm.scale), offset=list(norm.offset), name="preprocess")
    x = rescale(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    x = keras.layers.Dense(len(LABELS), name="logits")(x)
    outputs = keras.layers.Activation("softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(4):  # pixels spanning 0..255, so the input quantization is scale 1
            yield [rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.float32)]

    models = {"float": tf.lite.TFLiteConverter.from_keras_model(model).convert()}
    for kind in ("uint8", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, kind)
        converter.inference_output_type = getattr(tf, kind)
        models[kind] = converter.convert()
    return models


@pytest.fixture(scope="module")
def with_metadata(converted, spec) -> dict[str, bytes]:
    return {
        kind: add_metadata(model, spec, artifact_metadata(spec), source_run="runs/pets-1")
        for kind, model in converted.items()
    }


def _image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)


def _run_litert(model: bytes, pixels: np.ndarray) -> np.ndarray:
    """Probabilities for raw uint8 pixels, feeding them as the stored value (no scaling)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    values = pixels.astype(np.int16) - (128 if inp["dtype"] == np.int8 else 0)
    interpreter.set_tensor(inp["index"], values.astype(inp["dtype"]))
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"]).astype(np.float32)
    scale, zero_point = out["quantization"]
    return (raw - zero_point) * scale if scale else raw


@pytest.mark.parametrize("kind", KINDS)
def test_edge_metadata_round_trips_to_the_spec(with_metadata, spec, kind):
    values = read_metadata(with_metadata[kind])
    assert values == {**artifact_metadata(spec), KEY_SOURCE_RUN: "runs/pets-1"}
    rebuilt = spec_from_metadata(values)
    assert rebuilt.labels == LABELS
    assert rebuilt.normalization == spec.normalization
    assert rebuilt.input_size == (SIZE, SIZE)


@pytest.mark.parametrize("kind", KINDS)
def test_standard_metadata_declares_raw_pixel_input_and_labels(with_metadata, kind):
    meta = read_standard_metadata(with_metadata[kind])
    assert (meta["name"], meta["version"], meta["min_parser_version"]) == ("pets", "3", "1.0.0")
    assert meta["author"].startswith("edge")
    assert meta["labels"] == LABELS
    assert meta["labels_file"] == LABELS_FILE
    assert meta["associated_files"] == [LABELS_FILE]
    # Normalization is in the graph: the consumer must feed pixels unchanged.
    assert meta["normalization"] == {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    assert meta["image"] == {"color_space": "RGB", "width": SIZE, "height": SIZE}
    assert meta["input"]["content"] == "image"
    assert "mean [120.0, 115.0, 100.0]" in meta["input"]["description"]
    expected_input = {"int8": ([-128.0], [127.0])}.get(kind, ([0.0], [255.0]))
    assert (meta["input"]["stats"]["min"], meta["input"]["stats"]["max"]) == expected_input
    expected_output = {
        "float": ([0.0], [1.0]),  # probabilities
        "uint8": ([0.0], [255.0]),  # quantized with scale 1/256: 1.0 saturates at 255
        "int8": ([-128.0], [127.0]),
    }
    assert (meta["output"]["stats"]["min"], meta["output"]["stats"]["max"]) == expected_output[kind]
    assert meta["output"]["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"


def test_labels_are_packed_as_an_uncompressed_zip_after_the_flatbuffer(with_metadata):
    data = with_metadata["float"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (info,) = archive.infolist()
        assert info.filename == LABELS_FILE
        assert info.compress_type == zipfile.ZIP_STORED
        assert archive.read(LABELS_FILE).decode() == "cat\ndog\nbird\n"
        assert info.header_offset > len(data) // 2  # offsets count from the start of the file


@pytest.mark.parametrize("kind", KINDS)
def test_model_computes_the_same_after_adding_metadata(converted, with_metadata, kind):
    before = _run_litert(converted[kind], _image())
    after = _run_litert(with_metadata[kind], _image())
    np.testing.assert_array_equal(before, after)
    assert len(np.unique(np.round(after, 2))) > 1  # a model that tells classes apart


def test_adding_again_replaces_metadata_and_is_deterministic(with_metadata, spec):
    first = with_metadata["uint8"]
    renamed = ModelSpec.from_dict({**spec.to_dict(), "labels": ["a", "b", "c"]})
    again = add_metadata(first, renamed, artifact_metadata(renamed, "runs/other"))
    assert read_standard_metadata(again)["labels"] == ["a", "b", "c"]
    assert spec_from_metadata(read_metadata(again)).labels == ["a", "b", "c"]
    assert read_metadata(again)[KEY_SOURCE_RUN] == "runs/other"
    back = add_metadata(again, spec, artifact_metadata(spec), source_run="runs/pets-1")
    assert back == first  # same model, same spec -> same bytes: nothing piles up

    from ai_edge_litert import schema_py_generated as tfl

    model = tfl.Model.GetRootAs(back, 0)
    names = [model.Metadata(i).Name().decode() for i in range(model.MetadataLength())]
    assert len(names) == len(set(names))
    assert STANDARD_METADATA_NAME in names and "min_runtime_version" in names


def test_reads_from_a_path(with_metadata, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(with_metadata["float"])
    assert read_standard_metadata(path)["labels"] == LABELS
    assert spec_from_metadata(read_metadata(str(path))).name == "pets"


def test_unreadable_inputs_give_edge_errors(converted, tmp_path):
    with pytest.raises(EdgeError, match="not a TFLite model"):
        read_metadata(b"PK\x03\x04 certainly not a flatbuffer")
    with pytest.raises(EdgeError, match="No TFLite model found"):
        read_metadata(tmp_path / "missing.tflite")
    with pytest.raises(EdgeError, match="carries no edge metadata"):
        read_metadata(converted["float"])
    with pytest.raises(EdgeError, match="no standard TFLite metadata"):
        read_standard_metadata(converted["float"])
    with pytest.raises(EdgeError):
        read_metadata(converted["float"][:64])  # truncated


def test_model_that_does_not_match_the_spec_is_refused(converted, spec):
    four = ModelSpec.from_dict({**spec.to_dict(), "labels": LABELS + ["fish"]})
    with pytest.raises(EdgeError, match="outputs 3 scores but the spec has 4 labels"):
        add_metadata(converted["float"], four, artifact_metadata(four))
    bigger = ModelSpec.from_dict({**spec.to_dict(), "input_size": [32, 32]})
    with pytest.raises(EdgeError, match="does not match the spec's 32x32"):
        add_metadata(converted["float"], bigger, artifact_metadata(bigger))
    bad_label = ModelSpec.from_dict({**spec.to_dict(), "labels": ["cat", "dog\nbird", "x"]})
    with pytest.raises(EdgeError, match="cannot be written"):
        add_metadata(converted["float"], bad_label, artifact_metadata(bad_label))


def test_quantized_input_that_is_not_raw_pixels_is_refused(converted, spec):
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(converted["uint8"]))
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].quantization.scale = np.array([0.5], np.float32)
    rescaled = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    with pytest.raises(EdgeError, match="scale 0.5 .* does not take raw 0..255 pixels"):
        add_metadata(rescaled, spec, artifact_metadata(spec))


def test_schema_round_trip_without_a_model():
    info = schema.ModelInfo(
        name="m",
        description="d",
        version="7",
        author="a",
        inputs=[
            schema.TensorInfo(
                "in", image_size=(5, 4), normalization=([1.0], [2.0]), stats=([0.0], [9.0])
            )
        ],
        outputs=[
            schema.TensorInfo(
                "out", files=[schema.FileInfo("l.txt", "labels", schema.TENSOR_AXIS_LABELS)]
            )
        ],
    )
    buf = schema.build(info)
    assert buf[4:8] == schema.FILE_IDENTIFIER
    parsed = schema.parse(buf)
    (graph,) = parsed["subgraphs"]
    (image,), (output,) = graph["inputs"], graph["outputs"]
    assert (parsed["name"], parsed["version"], parsed["min_parser_version"]) == ("m", "7", "1.0.0")
    assert image["default_size"] == {"width": 5, "height": 4} and image["color_space"] == "RGB"
    assert image["normalization"] == {"mean": [1.0], "std": [2.0]}
    assert image["stats"] == {"min": [0.0], "max": [9.0]}
    assert output["content"] == "feature" and output["normalization"] is None
    assert output["associated_files"] == [
        {"name": "l.txt", "description": "labels", "type": "TENSOR_AXIS_LABELS"}
    ]


# ----------------------------------------------------------------------- real metadata consumers


def _pixels() -> np.ndarray:
    return np.concatenate([_image(), np.random.default_rng(2).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)])


@pytest.fixture(scope="module")
def mediapipe_files(with_metadata, tmp_path_factory) -> tuple[dict[str, Path], list[Path]]:
    """Every kind as a .tflite file, and ``_pixels()`` as PNG photos at the model's size (lossless, no resize:
    MediaPipe's decode must give back exactly these pixels)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("mediapipe")
    models = {}
    for kind, data in with_metadata.items():
        models[kind] = folder / f"{kind}.tflite"
        models[kind].write_bytes(data)
    photos = []
    for i, pixels in enumerate(_pixels()):
        photos.append(folder / f"photo{i}.png")
        Image.fromarray(pixels).save(photos[-1])
    return models, photos


@pytest.fixture(scope="module")
def mediapipe_results(mediapipe_files, mediapipe_python, tmp_path_factory) -> tuple[dict, np.ndarray]:
    """What MediaPipe (in its own venv) reads from, and classifies with, every file: the pixels as arrays and
    as photo files it decodes itself."""
    import json
    import subprocess

    from edge.runtimes.mediapipe import CONSUMER

    models, photos = mediapipe_files
    folder = tmp_path_factory.mktemp("mediapipe_request")
    pixels = _pixels()
    np.save(folder / "images.npy", pixels)
    request = folder / "request.json"
    request.write_text(json.dumps({"models": [str(p) for p in models.values()], "images": str(folder / "images.npy"),
                                   "files": [str(p) for p in photos], "max_results": 3}))
    done = subprocess.run([str(mediapipe_python), str(CONSUMER), str(request)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {kind: out["models"][str(path)] for kind, path in models.items()}, pixels


def test_mediapipe_generated_schema_parses_the_metadata(mediapipe_results):
    results, _ = mediapipe_results
    assert [results[kind]["input_type"] for kind in KINDS] == ["FLOAT32", "UINT8", "INT8"]
    for kind, result in results.items():
        meta = result["metadata"]
        assert meta["identifier"] and meta["image_properties"] and meta["rgb"], kind
        assert meta["normalization"] and meta["mean"] == [0.0, 0.0, 0.0], kind
        assert meta["labels_file"] == LABELS_FILE and meta["labels_are_axis_labels"], kind


@pytest.mark.parametrize("kind", ["float", "uint8"])  # MediaPipe's classifier takes no int8 input
@pytest.mark.parametrize("given", ["classify", "files"])  # pixels, or photo files MediaPipe decodes itself
def test_mediapipe_image_classifier_feeds_raw_pixels_and_returns_labels(with_metadata, mediapipe_results, kind, given):
    results, pixels = mediapipe_results
    expected = [_run_litert(with_metadata[kind], pixels[i : i + 1])[0] for i in range(len(pixels))]
    assert len(results[kind][given]) == len(pixels)
    for image, categories in enumerate(results[kind][given]):
        assert sorted(c["label"] for c in categories) == sorted(LABELS)
        for category in categories:
            assert category["label"] == LABELS[category["index"]]
            assert category["score"] == pytest.approx(float(expected[image][category["index"]]), abs=1e-5)


def test_mediapipe_refuses_int8_input(mediapipe_results):
    results, _ = mediapipe_results
    assert "INT8" in results["int8"]["refused"] and "classify" not in results["int8"]


def test_edge_runs_mediapipe_on_photo_files(with_metadata, mediapipe_files, mediapipe_python):
    """``edge.runtimes.mediapipe.classify_files``: per-photo top-1 indices equal to LiteRT's on the same pixels,
    int8 input "refused", and a photo MediaPipe cannot read counted as -1 with its error."""
    from edge.runtimes.mediapipe import INT8_INPUT, classify_files

    models, photos = mediapipe_files
    broken = photos[0].with_name("broken.png")
    broken.write_bytes(b"\x89PNG not really")
    results = classify_files(mediapipe_python, list(models.values()), [*photos, broken])
    pixels = _pixels()
    for kind in ("float", "uint8"):
        expected = [int(_run_litert(with_metadata[kind], pixels[i : i + 1])[0].argmax()) for i in range(len(pixels))]
        result = results[models[kind]]
        assert result.top1.tolist() == [*expected, -1] and not result.refused, kind
        assert list(result.unreadable) == [str(broken)]
    assert len(set(expected)) > 1  # the photos are not all one class: the comparison can fail
    assert results[models["int8"]].refused == INT8_INPUT and results[models["int8"]].top1 is None


def test_edge_hands_mediapipe_pixels_as_they_are(with_metadata, mediapipe_files, mediapipe_python):
    """``classify_files(..., pixels=...)``: MediaPipe given images at the model's size (nothing for it to decode
    or resize) answers as LiteRT does on them (benchmarks/scripts/flip_margins.py separates decode from resize)."""
    from edge.runtimes.mediapipe import classify_files

    models, _ = mediapipe_files
    pixels = _pixels()
    results = classify_files(mediapipe_python, [models["float"]], [], pixels=pixels)
    expected = [int(_run_litert(with_metadata["float"], pixels[i : i + 1])[0].argmax()) for i in range(len(pixels))]
    assert results[models["float"]].top1.tolist() == expected and len(set(expected)) > 1


def test_mediapipe_cpu_resize_is_the_one_mediapipe_does(mediapipe_python, tmp_path):
    """``edge.data.resize.mediapipe_cpu`` gives exactly the pixels MediaPipe's ImageClassifier feeds a model.
    The probe model's "class scores" are its input pixels (identity normalization), so MediaPipe's answer on a
    photo file is its resize of it: photos larger and smaller than the input, on each axis."""
    import json
    import subprocess

    from PIL import Image

    from edge.data.resize import REFERENCE, RESIZERS, mediapipe_cpu
    from edge.keras_setup import keras, tf
    from edge.runtimes.mediapipe import CONSUMER

    height, width = 12, 20
    count = height * width * 3
    inputs = keras.Input((height, width, 3), name="image", batch_size=1)
    probe = keras.Model(inputs, keras.layers.Reshape((count,), name="probabilities")(inputs))
    spec = ModelSpec(name="probe", backbone="tiny", labels=[f"p{i}" for i in range(count)],
                     input_size=(height, width), normalization=Normalization(mean=(0.0,) * 3, std=(1.0,) * 3))
    model = tmp_path / "probe.tflite"
    model.write_bytes(add_metadata(tf.lite.TFLiteConverter.from_keras_model(probe).convert(), spec, artifact_metadata(spec)))
    rng = np.random.default_rng(5)
    photos = {}
    for size in ((37, 29), (15, 7), (20, 12), (64, 9)):  # (width, height): down, up, the same, mixed
        photos[tmp_path / f"{size[0]}x{size[1]}.png"] = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    for path, pixels in photos.items():
        Image.fromarray(pixels).save(path)
    request, answer = tmp_path / "request.json", tmp_path / "answer.json"
    request.write_text(json.dumps({"models": [str(model)], "files": [str(p) for p in photos], "max_results": -1,
                                   "metadata": False, "out": str(answer)}))
    subprocess.run([str(mediapipe_python), str(CONSUMER), str(request)], check=True, capture_output=True, timeout=300)
    results = json.loads(answer.read_text())["models"][str(model)]["files"]
    for (path, pixels), categories in zip(photos.items(), results, strict=True):
        seen = np.zeros(count, np.float32)
        for category in categories:
            seen[category["index"]] = category["score"]
        seen = seen.reshape(height, width, 3)
        ours = mediapipe_cpu(Image.fromarray(pixels), (height, width))
        np.testing.assert_array_equal(ours, seen, err_msg=path.name)
        if pixels.shape[:2] != (height, width):  # the test can fail: edge's own resize is another one
            assert not np.array_equal(RESIZERS[REFERENCE](Image.fromarray(pixels), (height, width)), seen)
