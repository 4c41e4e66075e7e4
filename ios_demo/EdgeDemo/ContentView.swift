// ContentView.swift -- the root screen: a model state, or the three tabs once a model is ready.

import SwiftUI

struct ContentView: View {
    @State private var store = ModelStore()

    var body: some View {
        Group {
            switch store.state {
            case .loading:
                ProgressView("Loading the model…")
            case .missing:
                StatusViews.noModel
            case .failed(let message):
                StatusViews.loadFailed(message)
            case .ready(let classifier):
                TabView {
                    CameraScreen(classifier: classifier)
                        .tabItem { Label("Camera", systemImage: "camera.viewfinder") }
                    PhotoScreen(classifier: classifier)
                        .tabItem { Label("Photo", systemImage: "photo.on.rectangle") }
                    ModelInfoScreen(info: classifier.info)
                        .tabItem { Label("Model", systemImage: "info.circle") }
                }
            }
        }
        .task { await store.load() }
    }
}
