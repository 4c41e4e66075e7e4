// StatusViews.swift -- full-screen states: no model bundled, model load failure, camera problems.

import SwiftUI
import UIKit

/// Main-actor isolated: the views are built in `body` and open the Settings app.
@MainActor
enum StatusViews {
    static var noModel: some View {
        ContentUnavailableView {
            Label("No model bundled", systemImage: "shippingbox")
        } description: {
            Text("Install an exported classifier, then build and run again:\n`edge ios install exports/MODEL.mlpackage`\n(see ios_demo/README.md).")
        }
    }

    static func loadFailed(_ message: String) -> some View {
        ContentUnavailableView {
            Label("The model could not be loaded", systemImage: "exclamationmark.octagon")
        } description: {
            Text(message)
        }
    }

    static var cameraDenied: some View {
        ContentUnavailableView {
            Label("Camera access is off", systemImage: "video.slash")
        } description: {
            Text("Allow camera access for Edge Demo in Settings to classify live. The Photo tab works without it.")
        } actions: {
            Button("Open Settings") {
                if let url = URL(string: UIApplication.openSettingsURLString) {
                    UIApplication.shared.open(url)
                }
            }
            .buttonStyle(.borderedProminent)
        }
    }

    static func cameraUnavailable(_ message: String) -> some View {
        ContentUnavailableView {
            Label("Camera unavailable", systemImage: "camera.badge.ellipsis")
        } description: {
            Text(message)
        }
    }
}
