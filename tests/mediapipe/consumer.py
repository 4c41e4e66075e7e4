"""Run edge's TFLite files through MediaPipe Tasks, as an app would; prints JSON (run in the MediaPipe venv).

``python tests/mediapipe/consumer.py REQUEST.json`` where the request is
``{"models": [paths], "images": "images.npy", "max_results": 3}`` (uint8 N x H x W x 3). For each
model: what MediaPipe's own generated metadata schema reads from the file, and the categories its
ImageClassifier returns for every image. It imports nothing from edge: MediaPipe cannot share a
venv with edge's tensorflow-model-optimization.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

METADATA_NAME = b"TFLITE_METADATA"


def read_metadata(path: Path) -> dict:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta_schema
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    data = path.read_bytes()
    model = tfl.Model.GetRootAs(data, 0)
    entry = next(model.Metadata(i) for i in range(model.MetadataLength()) if model.Metadata(i).Name() == METADATA_NAME)
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


def classify(path: Path, images: np.ndarray, max_results: int) -> list[list[dict]]:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                            max_results=max_results)
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for pixels in images:
            out = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels)))
            results.append([{"label": c.category_name, "index": int(c.index), "score": float(c.score)}
                            for c in out.classifications[0].categories])
    return results


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text())
    images = np.load(request["images"])
    out = {}
    for model in request["models"]:
        path = Path(model)
        out[model] = {"metadata": read_metadata(path), "classify": classify(path, images, request.get("max_results", 3))}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
