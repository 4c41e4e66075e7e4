// ModelContract.swift -- GENERATED from src/edge/contract.py by `edge ios contract`.
// Do not edit: change the Python side and regenerate. A test fails while this file is stale.

import Vision

/// The names shared by edge's Core ML export and this app, defined once in Python.
enum ModelContract {
    /// Core ML feature names of every edge classifier (inputs and outputs).
    enum Feature {
        static let input = "image"  // COREML_INPUT
        static let labelOutput = "classLabel"  // COREML_LABEL_OUTPUT
        static let probsOutput = "classLabelProbs"  // COREML_PROBS_OUTPUT
    }

    /// Keys of the model's user-defined metadata (`metadata[.creatorDefinedKey]`).
    enum MetadataKey {
        /// the whole ModelSpec as JSON: the source of truth for readers
        static let spec = "edge.spec"  // KEY_SPEC
        /// JSON list, class-index order
        static let labels = "edge.labels"  // KEY_LABELS
        /// "HxW"
        static let inputSize = "edge.input_size"  // KEY_INPUT_SIZE
        /// JSON {"mean": [...], "std": [...], "channel_order": ...}
        static let normalization = "edge.normalization"  // KEY_NORMALIZATION
        /// how training resized images (edge.data.resize.MODES: stretch-bilinear, ...)
        static let resize = "edge.resize"  // KEY_RESIZE
        static let modelName = "edge.model_name"  // KEY_MODEL_NAME
        static let modelVersion = "edge.model_version"  // KEY_MODEL_VERSION
        static let edgeVersion = "edge.edge_version"  // KEY_EDGE_VERSION
        static let sourceRun = "edge.source_run"  // KEY_SOURCE_RUN
        static let backbone = "edge.backbone"  // KEY_BACKBONE
    }

    /// The training resize assumed when a model carries no `MetadataKey.resize` entry
    /// (ModelSpec's default).
    static let defaultResize = "stretch-bilinear"

    /// How Vision must scale an image to reproduce each training resize (edge.data.images).
    /// `.scaleFill` stretches the whole image to the input size: no crop, aspect not kept.
    static let cropAndScaleOptionByResize: [String: VNImageCropAndScaleOption] = [
        "stretch-bilinear": .scaleFill,
        "stretch-mediapipe": .scaleFill,
    ]
}
