// CameraScreen.swift -- live classification of the back camera.

import SwiftUI

struct CameraScreen: View {
    let classifier: ImageClassifier
    @State private var camera = LiveCamera()

    var body: some View {
        ZStack(alignment: .bottom) {
            switch camera.state {
            case .denied:
                StatusViews.cameraDenied
            case .unavailable(let message):
                StatusViews.cameraUnavailable(message)
            case .idle, .running:
                Color.black.ignoresSafeArea()
                CameraPreview(feed: camera.feed)
                    .ignoresSafeArea(edges: .top)
                resultsPanel
            }
        }
        // .task is cancelled when the tab disappears; the session is stopped there too.
        .task { await camera.start(with: classifier) }
        .onDisappear { camera.stop() }
    }

    @ViewBuilder
    private var resultsPanel: some View {
        VStack(alignment: .leading, spacing: 8) {
            if let classification = camera.classification {
                PredictionList(classification: classification)
            } else {
                Text("Point the camera at something \(classifier.info.modelName) knows.")
                    .foregroundStyle(.secondary)
            }
            if let failure = camera.failure {
                Label(failure, systemImage: "exclamationmark.triangle")
                    .font(.footnote)
                    .foregroundStyle(.red)
            }
        }
        .padding()
        .frame(maxWidth: .infinity, alignment: .leading)
        .background(.regularMaterial, in: RoundedRectangle(cornerRadius: 16))
        .padding()
    }
}
