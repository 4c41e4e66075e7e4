// EdgeDemoApp.swift -- entry point of the edge iOS demo.

import SwiftUI

/// Classifies camera frames and library photos with whichever edge classifier is bundled
/// (see BundledModel.swift for how the model is found).
@main
struct EdgeDemoApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
