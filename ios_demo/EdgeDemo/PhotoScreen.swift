// PhotoScreen.swift -- classify a still image chosen from the photo library.

import ImageIO
import PhotosUI
import SwiftUI
import UIKit

struct PhotoScreen: View {
    let classifier: ImageClassifier
    @State private var selection: PhotosPickerItem?
    @State private var photo: DecodedPhoto?
    @State private var classification: Classification?
    @State private var failure: String?
    @State private var isWorking = false

    var body: some View {
        NavigationStack {
            VStack(spacing: 16) {
                if let photo {
                    Image(uiImage: photo.displayImage)
                        .resizable()
                        .scaledToFit()
                        .clipShape(RoundedRectangle(cornerRadius: 12))
                        .frame(maxHeight: 360)
                } else {
                    ContentUnavailableView(
                        "No photo yet",
                        systemImage: "photo",
                        description: Text("Choose a photo to classify it with \(classifier.info.modelName).")
                    )
                }
                if isWorking {
                    ProgressView()
                } else if let classification {
                    PredictionList(classification: classification)
                }
                if let failure {
                    Label(failure, systemImage: "exclamationmark.triangle").foregroundStyle(.red)
                }
                Spacer(minLength: 0)
                // PhotosPicker runs out of process: the app sees only the chosen photo and needs
                // no photo-library permission for it.
                PhotosPicker(selection: $selection, matching: .images) {
                    Label("Choose Photo", systemImage: "photo.on.rectangle")
                        .frame(maxWidth: .infinity)
                }
                .buttonStyle(.borderedProminent)
                .controlSize(.large)
            }
            .padding()
            .navigationTitle("Photo")
            .onChange(of: selection) { _, item in
                Task { await classify(item) }
            }
        }
    }

    @MainActor
    private func classify(_ item: PhotosPickerItem?) async {
        guard let item else { return }
        isWorking = true
        defer { isWorking = false }
        do {
            guard let data = try await item.loadTransferable(type: Data.self) else {
                throw PhotoError.unreadable
            }
            let decoded = try DecodedPhoto(data: data)
            // Off the main thread: a 48-megapixel photo takes a moment to decode and scale.
            let model = self.classifier
            let result = try await Task.detached(priority: .userInitiated) {
                try model.classify(decoded.image, orientation: decoded.orientation)
            }.value
            photo = decoded
            classification = result
            failure = nil
        } catch {
            classification = nil
            failure = error.localizedDescription
        }
    }
}

enum PhotoError: LocalizedError {
    case unreadable

    var errorDescription: String? { "That photo could not be read as an image." }
}

/// A photo's pixels exactly as stored, plus the EXIF orientation that says how to turn them
/// upright. The orientation is passed to Vision rather than baked into the pixels.
struct DecodedPhoto: @unchecked Sendable {
    let image: CGImage
    let orientation: CGImagePropertyOrientation

    init(data: Data) throws {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil),
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else {
            throw PhotoError.unreadable
        }
        let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any]
        let rawOrientation = (properties?[kCGImagePropertyOrientation] as? NSNumber)?.uint32Value ?? 1
        self.image = image
        self.orientation = CGImagePropertyOrientation(rawValue: rawOrientation) ?? .up
    }

    /// For display: UIImage applies the same orientation when drawing.
    var displayImage: UIImage {
        UIImage(cgImage: image, scale: 1, orientation: UIImage.Orientation(orientation))
    }
}

extension UIImage.Orientation {
    init(_ orientation: CGImagePropertyOrientation) {
        switch orientation {
        case .up: self = .up
        case .upMirrored: self = .upMirrored
        case .down: self = .down
        case .downMirrored: self = .downMirrored
        case .left: self = .left
        case .leftMirrored: self = .leftMirrored
        case .right: self = .right
        case .rightMirrored: self = .rightMirrored
        @unknown default: self = .up
        }
    }
}
