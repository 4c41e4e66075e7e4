// ModelStore.swift -- loads the bundled model once and publishes the app-wide model state.

import CoreML
import Observation

@Observable
final class ModelStore {
    enum State {
        case loading
        /// No model file in the app bundle (run `edge ios install` and rebuild).
        case missing
        /// A model was found but could not be compiled, loaded or understood.
        case failed(String)
        case ready(ImageClassifier)
    }

    private(set) var state: State = .loading

    @MainActor
    func load() async {
        guard case .loading = state else { return }
        guard let url = BundledModel.locate() else {
            state = .missing
            return
        }
        do {
            // Compiling and loading run off the main actor (non-isolated async functions).
            let model = try await BundledModel.load(url)
            let info = try ModelInfo(model: model, fileName: url.lastPathComponent)
            state = .ready(try ImageClassifier(model: model, info: info))
        } catch {
            state = .failed("\(url.lastPathComponent): \(error.localizedDescription)")
        }
    }
}
