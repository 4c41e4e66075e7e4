"""Run TFLite files through MediaPipe Tasks' ImageClassifier, as an app would; a script for MediaPipe's own Python.

MediaPipe cannot share a venv with edge (its absl-py pin conflicts with tensorflow-model-optimization's),
so this file imports nothing from edge: ``edge.runtimes.mediapipe`` (``edge bench``) and the tests run it
as a file with MediaPipe's interpreter::

    python mediapipe_consumer.py REQUEST.json     # prints the answer as one JSON line
    python mediapipe_consumer.py --version        # prints MediaPipe's version

The request: ``{"models": [paths], "images": "pixels.npy", "files": [photo paths], "max_results": 3,
"metadata": true, "out": "answer.json"}``. ``images`` (optional): uint8 N x H x W x 3 pixels, handed to
MediaPipe as they are. ``files`` (optional): photos MediaPipe decodes itself (``mp.Image.create_from_file``)
and resizes its own way, the way a real app hands it a photo. ``out`` (optional): where the answer goes
instead of stdout. The answer: ``{"version": ..., "models": {path: {...}}}``, each model with

* ``input_type``: its input tensor's type as the file declares it (``UINT8``, ``FLOAT32``, ``INT8``);
* ``metadata`` (unless ``"metadata": false``): what MediaPipe's generated metadata schema reads from it;
* ``refused``: why the ImageClassifier would not take the model (then no results), else
* ``classify`` (one per image) and ``files`` (one per photo): the categories it returns, best first,
  each ``{"label", "index", "score"}``; a photo it could not read is ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METADATA_NAME = b"TFLITE_METADATA"


def _unshadow() -> None:
    """Run as a file, Python puts this folder first on ``sys.path``, where edge's own runtime modules
    (``mediapipe.py``, ``tensorflow.py``) would stand in for the real packages: take it off first."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry).resolve() != here]


def _model(path: Path):
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    return tfl, tfl.Model.GetRootAs(path.read_bytes(), 0)


def input_type(path: Path) -> str:
    """The input tensor's type name (``UINT8``, ``FLOAT32``, ``INT8`` ...) as the flatbuffer declares it."""
    tfl, model = _model(path)
    graph = model.Subgraphs(0)
    code = graph.Tensors(graph.Inputs(0)).Type()
    return next((name for name, value in vars(tfl.TensorType).items() if value == code and name.isupper()), str(code))


def read_metadata(path: Path) -> dict:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta_schema

    _, model = _model(path)
    entry = next((model.Metadata(i) for i in range(model.MetadataLength()) if model.Metadata(i).Name() == METADATA_NAME),
                 None)
    if entry is None:
        return {"identifier": False}
    buf = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    if not meta_schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0):
        return {"identifier": False}
    meta = meta_schema.ModelMetadataT.InitFromObj(meta_schema.ModelMetadata.GetRootAs(buf, 0))
    image = meta.subgraphMetadata[0].inputTensorMetadata[0]
    output = meta.subgraphMetadata[0].outputTensorMetadata[0]
    unit = image.processUnits[0] if image.processUnits else None
    return {
        "identifier": True,
        "image_properties": image.content.contentPropertiesType == meta_schema.ContentProperties.ImageProperties,
        "rgb": image.content.contentProperties.colorSpace == meta_schema.ColorSpaceType.RGB,
        "normalization": (unit is not None and unit.optionsType == meta_schema.ProcessUnitOptions.NormalizationOptions),
        "mean": [float(v) for v in unit.options.mean] if unit is not None else None,
        "labels_file": output.associatedFiles[0].name.decode() if output.associatedFiles else None,
        "labels_are_axis_labels": bool(output.associatedFiles)
        and output.associatedFiles[0].type == meta_schema.AssociatedFileType.TENSOR_AXIS_LABELS,
    }


def _categories(result) -> list[dict]:
    return [{"label": c.category_name, "index": int(c.index), "score": float(c.score)}
            for c in result.classifications[0].categories]


def classify(path: Path, images, files: list[str], max_results: int) -> dict:
    """``classify`` (``images``: uint8 pixels or None) and ``files`` (photos MediaPipe decodes) results, or
    ``refused``."""
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                            max_results=max_results)
    try:
        classifier = vision.ImageClassifier.create_from_options(options)
    except (ValueError, RuntimeError) as exc:  # e.g. "Type mismatch for input tensor ...: got INT8"
        return {"refused": str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}
    out: dict = {}
    with classifier:
        if images is not None:
            out["classify"] = [_categories(classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                                        data=np.ascontiguousarray(pixels))))
                               for pixels in images]
        if files:
            out["files"] = []
            for file in files:
                try:
                    out["files"].append(_categories(classifier.classify(mp.Image.create_from_file(file))))
                except (ValueError, RuntimeError, OSError) as exc:  # a photo MediaPipe cannot decode or take
                    out["files"].append({"error": str(exc).strip() or type(exc).__name__})
    return out


def main(argv: list[str]) -> int:
    _unshadow()
    if argv[1:] == ["--version"]:
        import mediapipe as mp

        print(mp.__version__)
        return 0
    import numpy as np

    request = json.loads(Path(argv[1]).read_text())
    images = np.load(request["images"]) if request.get("images") else None
    files = [str(f) for f in request.get("files", [])]
    models = {}
    for model in request["models"]:
        path = Path(model)
        entry: dict = {"input_type": input_type(path)}
        if request.get("metadata", True):
            entry["metadata"] = read_metadata(path)
        entry.update(classify(path, images, files, int(request.get("max_results", 3))))
        models[model] = entry
    import mediapipe as mp

    answer = json.dumps({"version": mp.__version__, "models": models})
    if request.get("out"):
        Path(request["out"]).write_text(answer)
    else:
        print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
