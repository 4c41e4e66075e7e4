// ModelInfo.swift -- what the app knows about the bundled classifier, read from the model itself.

import CoreML
import Foundation
import Vision

/// Facts about the loaded model, all read at runtime from its Core ML description: class labels
/// from `classLabels`, input size from the image input's constraint, everything else from the
/// user-defined metadata edge writes at export (keys in ModelContract.swift). Nothing here is a
/// copy of a training-time constant.
struct ModelInfo {
    struct Entry: Identifiable {
        let key: String
        let value: String
        var id: String { key }
    }

    let fileName: String
    /// Class labels in class-index order (what Vision's observations are named after).
    let labels: [String]
    /// The Core ML image input Vision feeds.
    let inputName: String
    let inputWidth: Int
    let inputHeight: Int
    let modelName: String
    let modelVersion: String
    let sourceRun: String
    let backbone: String
    let edgeVersion: String
    /// How training resized images, and the Vision option that reproduces it.
    let resize: String
    let cropAndScale: VNImageCropAndScaleOption
    /// The model's own normalization, already applied inside the model (shown for reference).
    let normalization: String
    /// Every user-defined metadata entry, sorted by key, for the info screen.
    let metadata: [Entry]
    /// Things that are off but do not stop the app (e.g. a model exported by another tool).
    let warnings: [String]

    init(model: MLModel, fileName: String) throws {
        let description = model.modelDescription
        let metadata = description.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
        var warnings: [String] = []

        guard let labels = description.classLabels?.map({ "\($0)" }), !labels.isEmpty else {
            throw ModelLoadError.notAClassifier
        }
        if let declared = Self.decodeJSON([String].self, metadata[ModelContract.MetadataKey.labels]),
           declared != labels {
            warnings.append("The labels in the metadata differ from the model's class labels; showing the class labels.")
        }

        // The contract names the input; fall back to the first image input for foreign models.
        let imageInputs = description.inputDescriptionsByName.filter { $0.value.type == .image }
        guard let input = imageInputs[ModelContract.Feature.input] ?? imageInputs.values.first,
              let constraint = input.imageConstraint else {
            throw ModelLoadError.noImageInput
        }
        if input.name != ModelContract.Feature.input {
            warnings.append("No input named '\(ModelContract.Feature.input)'; using '\(input.name)'.")
        }
        // Vision finds a classifier's outputs by itself; a mismatch only means another exporter.
        if description.predictedFeatureName != ModelContract.Feature.labelOutput
            || description.predictedProbabilitiesName != ModelContract.Feature.probsOutput {
            warnings.append("The classifier outputs are not named '\(ModelContract.Feature.labelOutput)' / '\(ModelContract.Feature.probsOutput)' as edge exports them.")
        }
        let declaredSize = metadata[ModelContract.MetadataKey.inputSize]
        if let declaredSize, declaredSize != "\(constraint.pixelsHigh)x\(constraint.pixelsWide)" {
            warnings.append("Metadata input size \(declaredSize) differs from the model input \(constraint.pixelsHigh)x\(constraint.pixelsWide).")
        }

        let resize = metadata[ModelContract.MetadataKey.resize] ?? ModelContract.defaultResize
        guard let cropAndScale = ModelContract.cropAndScaleOptionByResize[resize] else {
            throw ModelLoadError.unknownResize(resize)
        }
        if metadata.isEmpty {
            warnings.append("The model carries no edge metadata; assuming training resized with '\(resize)'.")
        }

        self.fileName = fileName
        self.labels = labels
        self.inputName = input.name
        self.inputWidth = constraint.pixelsWide
        self.inputHeight = constraint.pixelsHigh
        self.modelName = metadata[ModelContract.MetadataKey.modelName] ?? (fileName as NSString).deletingPathExtension
        self.modelVersion = metadata[ModelContract.MetadataKey.modelVersion]
            ?? description.metadata[.versionString] as? String ?? "unknown"
        self.sourceRun = metadata[ModelContract.MetadataKey.sourceRun] ?? "unknown"
        self.backbone = metadata[ModelContract.MetadataKey.backbone] ?? "unknown"
        self.edgeVersion = metadata[ModelContract.MetadataKey.edgeVersion] ?? "unknown"
        self.resize = resize
        self.cropAndScale = cropAndScale
        self.normalization = Self.describeNormalization(metadata[ModelContract.MetadataKey.normalization])
        self.metadata = metadata.map { Entry(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }
        self.warnings = warnings
    }

    private struct Normalization: Decodable {
        let mean: [Double]
        let std: [Double]
        let channel_order: String?
    }

    private static func describeNormalization(_ json: String?) -> String {
        guard let norm = decodeJSON(Normalization.self, json) else { return "unknown" }
        let format: ([Double]) -> String = { $0.map { String(format: "%g", $0) }.joined(separator: ", ") }
        return "(x - [\(format(norm.mean))]) / [\(format(norm.std))], \(norm.channel_order ?? "RGB")"
    }

    private static func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
        guard let text else { return nil }
        return try? JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

enum ModelLoadError: LocalizedError {
    case notAClassifier
    case noImageInput
    case unknownResize(String)

    var errorDescription: String? {
        switch self {
        case .notAClassifier:
            return "The model has no class labels. Export it with `edge export --format coreml`, which makes a Core ML classifier."
        case .noImageInput:
            return "The model has no image input, so Vision cannot feed it camera frames."
        case .unknownResize(let resize):
            return "The model was trained with resize '\(resize)', which this app cannot reproduce. Regenerate the app's contract (`edge ios contract`) with the edge version that trained it."
        }
    }
}

extension VNImageCropAndScaleOption {
    /// The option's Swift spelling, for the info screen.
    var name: String {
        switch self {
        case .centerCrop: return "centerCrop"
        case .scaleFit: return "scaleFit"
        case .scaleFill: return "scaleFill"
        case .scaleFitRotate90CCW: return "scaleFitRotate90CCW"
        case .scaleFillRotate90CCW: return "scaleFillRotate90CCW"
        @unknown default: return "option \(rawValue)"
        }
    }
}
