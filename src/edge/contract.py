"""The metadata contract between edge's exports and their consumers (bench, the iOS app).

Every exported artifact carries the same flat string key/value metadata, built here from the
ModelSpec; every reader turns it back into a ModelSpec here. The Swift app's copy of the key names
is generated from this module (see ``ios_demo``), so the names are defined exactly once.
"""

from __future__ import annotations

import json

from edge.errors import EdgeError
from edge.spec import ModelSpec

KEY_SPEC = "edge.spec"  # the whole ModelSpec as JSON: the source of truth for readers
KEY_LABELS = "edge.labels"  # JSON list, class-index order
KEY_INPUT_SIZE = "edge.input_size"  # "HxW"
KEY_NORMALIZATION = "edge.normalization"  # JSON {"mean": [...], "std": [...], "channel_order": ...}
KEY_RESIZE = "edge.resize"  # how training resized images (edge.data.resize.MODES: stretch-bilinear, ...)
KEY_MODEL_NAME = "edge.model_name"
KEY_MODEL_VERSION = "edge.model_version"
KEY_EDGE_VERSION = "edge.edge_version"
KEY_SOURCE_RUN = "edge.source_run"
KEY_BACKBONE = "edge.backbone"

# Names inside the model graph: edge.train builds them, export and the runtimes find them by name.
INPUT_NAME = "image"  # the raw-pixel input (also the serving signature's and TFLite's input name)
OUTPUT_NAME = "probabilities"  # the softmax output
PREPROCESS_LAYER = "preprocess"  # the Rescaling layer that holds the normalization

# Core ML interface names (the app reads these through Vision / MLModel).
COREML_INPUT = INPUT_NAME
COREML_LABEL_OUTPUT = "classLabel"
COREML_PROBS_OUTPUT = "classLabelProbs"


def artifact_metadata(spec: ModelSpec, source_run: str = "") -> dict[str, str]:
    """Flat string metadata written into every exported artifact."""
    from edge import __version__

    h, w = spec.input_size
    return {
        KEY_SPEC: spec.to_json(),
        KEY_LABELS: json.dumps(spec.labels),
        KEY_INPUT_SIZE: f"{h}x{w}",
        KEY_NORMALIZATION: json.dumps(spec.normalization.to_dict()),
        KEY_RESIZE: spec.resize,
        KEY_MODEL_NAME: spec.name,
        KEY_MODEL_VERSION: spec.model_version,
        KEY_EDGE_VERSION: __version__,
        KEY_SOURCE_RUN: source_run,
        KEY_BACKBONE: spec.backbone,
    }


def spec_from_metadata(metadata: dict[str, str], where: str = "the model") -> ModelSpec:
    """Rebuild the ModelSpec an artifact was exported with."""
    if KEY_SPEC not in metadata:
        raise EdgeError(f"{where} carries no edge metadata; pass --labels and normalization options.")
    return ModelSpec.from_json(metadata[KEY_SPEC])
