// LiveCamera.swift -- connects the camera feed to the classifier and publishes results to the UI.

import Foundation
import Observation

@Observable
final class LiveCamera {
    enum State: Equatable {
        case idle
        case running
        case denied
        case unavailable(String)
    }

    private(set) var state: State = .idle
    private(set) var classification: Classification?
    private(set) var failure: String?
    let feed = CameraFeed()

    @MainActor
    func start(with classifier: ImageClassifier) async {
        guard await CameraFeed.requestAccess() else {
            state = .denied
            return
        }
        feed.onFrame = { [weak self] pixelBuffer, orientation in
            guard let self else { return }
            // On the camera's frame queue. Vision runs synchronously here, so while one frame is
            // being classified the next ones are dropped by AVFoundation instead of piling up.
            let result = Result { try classifier.classify(pixelBuffer, orientation: orientation) }
            Task { @MainActor in self.show(result) }
        }
        do {
            try await feed.start()
            state = .running
        } catch {
            state = .unavailable(error.localizedDescription)
        }
    }

    func stop() {
        feed.stop()
    }

    @MainActor
    private func show(_ result: Result<Classification, Error>) {
        switch result {
        case .success(let classification):
            self.classification = classification
            failure = nil
        case .failure(let error):
            failure = error.localizedDescription
        }
    }
}
