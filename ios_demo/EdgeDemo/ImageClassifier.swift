// ImageClassifier.swift -- runs the bundled classifier on one image through Vision.

import CoreML
import CoreVideo
import Dispatch
import ImageIO
import Vision

struct Prediction: Identifiable, Equatable {
    let label: String
    let confidence: Float
    var id: String { label }
}

/// The top predictions for one image and how long Vision + Core ML took for it.
struct Classification: Equatable {
    let top: [Prediction]
    let milliseconds: Double
}

/// Wraps the loaded model for Vision. Safe to call from any thread: each call makes its own
/// request and handler, and Core ML models serve concurrent predictions.
final class ImageClassifier: @unchecked Sendable {
    let info: ModelInfo
    private let visionModel: VNCoreMLModel

    init(model: MLModel, info: ModelInfo) throws {
        visionModel = try VNCoreMLModel(for: model)
        // Vision feeds the first image input unless told otherwise; name the contract's input.
        visionModel.inputImageFeatureName = info.inputName
        self.info = info
    }

    /// A camera frame. `orientation` says how the buffer is rotated relative to upright.
    func classify(_ pixelBuffer: CVPixelBuffer, orientation: CGImagePropertyOrientation, count: Int = 3) throws -> Classification {
        try run(VNImageRequestHandler(cvPixelBuffer: pixelBuffer, orientation: orientation, options: [:]), count: count)
    }

    /// A still image. Photos store pixels as captured plus an EXIF orientation; Vision applies
    /// `orientation` before scaling, so the model sees the photo upright, as training did
    /// (edge.data.images applies EXIF orientation too).
    func classify(_ image: CGImage, orientation: CGImagePropertyOrientation, count: Int = 3) throws -> Classification {
        try run(VNImageRequestHandler(cgImage: image, orientation: orientation, options: [:]), count: count)
    }

    private func run(_ handler: VNImageRequestHandler, count: Int) throws -> Classification {
        let request = VNCoreMLRequest(model: visionModel)
        // Must match how training resized images, or accuracy silently drops: edge stretches the
        // whole image to the input size (`.scaleFill`); Vision's default, `.centerCrop`, would
        // cut off the sides. The option comes from the model's metadata (see ModelInfo).
        request.imageCropAndScaleOption = info.cropAndScale
        let start = DispatchTime.now().uptimeNanoseconds
        try handler.perform([request])  // synchronous: scaling, color conversion, inference
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
        // A Core ML classifier yields one VNClassificationObservation per class label, with the
        // model's probabilities as confidences.
        let observations = (request.results as? [VNClassificationObservation]) ?? []
        let top = observations
            .sorted { $0.confidence > $1.confidence }
            .prefix(count)
            .map { Prediction(label: $0.identifier, confidence: $0.confidence) }
        return Classification(top: Array(top), milliseconds: milliseconds)
    }
}
