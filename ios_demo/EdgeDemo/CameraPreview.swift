// CameraPreview.swift -- the live camera picture (UIKit layer hosted in SwiftUI).

import AVFoundation
import SwiftUI
import UIKit

struct CameraPreview: UIViewRepresentable {
    let feed: CameraFeed

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        view.backgroundColor = .black
        view.previewLayer.session = feed.session
        // Show the whole frame, because the model sees the whole frame (stretched to its input,
        // see ImageClassifier): .resizeAspectFill would hide parts that still affect the result.
        view.previewLayer.videoGravity = .resizeAspect
        feed.attachPreview(view.previewLayer)
        return view
    }

    func updateUIView(_ uiView: PreviewView, context: Context) {}
}
