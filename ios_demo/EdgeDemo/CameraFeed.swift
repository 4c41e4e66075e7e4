// CameraFeed.swift -- back-camera frames for classification, throttled, with their orientation.

import AVFoundation
import CoreMedia
import CoreVideo
import ImageIO
import QuartzCore

/// Owns the capture session. Frames arrive on a private queue and are handed to `onFrame`
/// one at a time, at most once per `minimumFrameInterval`.
final class CameraFeed: NSObject, AVCaptureVideoDataOutputSampleBufferDelegate, @unchecked Sendable {
    enum Failure: LocalizedError {
        case noCamera
        case unsupportedConfiguration

        var errorDescription: String? {
            switch self {
            case .noCamera: return "This device has no camera (the Simulator has none). Use the Photo tab."
            case .unsupportedConfiguration: return "The camera could not be configured for video frames."
            }
        }
    }

    let session = AVCaptureSession()
    /// Called on the frame queue. Work done here blocks the queue; that is the throttle.
    var onFrame: (@Sendable (CVPixelBuffer, CGImagePropertyOrientation) -> Void)?
    /// Seconds between classified frames (about 7 per second): enough to feel live while
    /// leaving the CPU/Neural Engine mostly idle so the UI and preview stay smooth.
    var minimumFrameInterval: CFTimeInterval = 0.15

    private let sessionQueue = DispatchQueue(label: "edge.camera.session")
    private let frameQueue = DispatchQueue(label: "edge.camera.frames", qos: .userInitiated)
    private let output = AVCaptureVideoDataOutput()
    private var device: AVCaptureDevice?
    private var lastFrameTime: CFTimeInterval = 0  // frame queue only

    // Orientation tracking: main thread only, see trackRotation().
    private weak var previewLayer: AVCaptureVideoPreviewLayer?
    private var rotationCoordinator: AVCaptureDevice.RotationCoordinator?
    private var rotationObservations: [NSKeyValueObservation] = []
    private let orientationLock = NSLock()
    private var bufferOrientation: CGImagePropertyOrientation = .right  // portrait until told

    /// Asks for camera access the first time; false when denied or restricted.
    static func requestAccess() async -> Bool {
        switch AVCaptureDevice.authorizationStatus(for: .video) {
        case .authorized: return true
        case .notDetermined: return await AVCaptureDevice.requestAccess(for: .video)
        default: return false  // .denied, .restricted: only the Settings app can change it
        }
    }

    /// Configures the session once and starts it. Safe to call again after `stop()`.
    func start() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            sessionQueue.async {
                do {
                    if self.device == nil { try self.configure() }
                    // startRunning() blocks until the camera runs: never call it on the main thread.
                    if !self.session.isRunning { self.session.startRunning() }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        await MainActor.run { self.trackRotation() }
    }

    func stop() {
        sessionQueue.async {
            if self.session.isRunning { self.session.stopRunning() }
        }
    }

    /// Called (on the main thread) by the preview view once its layer exists, so the preview
    /// rotates with the phone too.
    func attachPreview(_ layer: AVCaptureVideoPreviewLayer) {
        previewLayer = layer
        rotationCoordinator = nil
        trackRotation()
    }

    private func configure() throws {
        guard let camera = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back)
            ?? AVCaptureDevice.default(for: .video) else {
            throw Failure.noCamera
        }
        let input = try AVCaptureDeviceInput(device: camera)
        session.beginConfiguration()
        defer { session.commitConfiguration() }
        // Vision scales every frame down to the model input (a few hundred pixels), so larger
        // frames would only cost time.
        if session.canSetSessionPreset(.vga640x480) { session.sessionPreset = .vga640x480 }
        guard session.canAddInput(input) else { throw Failure.unsupportedConfiguration }
        session.addInput(input)
        // BGRA is the format Vision converts to the model's RGB input most directly.
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
        // Frames that arrive while the previous one is still being classified are dropped,
        // not queued: the results never lag behind the camera.
        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: frameQueue)
        guard session.canAddOutput(output) else { throw Failure.unsupportedConfiguration }
        session.addOutput(output)
        device = camera
    }

    /// Orientation. The video output's connection is left at its default rotation (0°), so
    /// buffers arrive as the sensor reads them: landscape, whatever way the phone is held.
    /// Instead of paying to rotate every buffer, we tell Vision how the buffer is turned.
    /// `RotationCoordinator` (iOS 17) reports the clockwise angle that makes a captured buffer
    /// level with the horizon (90° when the phone is held upright in portrait); the matching
    /// CGImagePropertyOrientation is the one whose "rotate to display" is that same angle.
    private func trackRotation() {
        guard rotationCoordinator == nil, let device else { return }
        let coordinator = AVCaptureDevice.RotationCoordinator(device: device, previewLayer: previewLayer)
        rotationObservations = [
            coordinator.observe(\.videoRotationAngleForHorizonLevelCapture, options: [.initial, .new]) { [weak self] coordinator, _ in
                guard let self else { return }
                self.setBufferOrientation(CameraFeed.orientation(forRotationAngle: coordinator.videoRotationAngleForHorizonLevelCapture))
            },
            coordinator.observe(\.videoRotationAngleForHorizonLevelPreview, options: [.initial, .new]) { [weak self] coordinator, _ in
                guard let self else { return }
                let angle = coordinator.videoRotationAngleForHorizonLevelPreview
                DispatchQueue.main.async { self.rotatePreview(to: angle) }
            },
        ]
        rotationCoordinator = coordinator
    }

    /// Clockwise rotation angle (degrees) -> EXIF-style orientation of an unrotated buffer.
    static func orientation(forRotationAngle angle: CGFloat) -> CGImagePropertyOrientation {
        switch (Int(angle.rounded()) % 360 + 360) % 360 {
        case 90: return .right  // portrait: the buffer's top is the scene's right side
        case 180: return .down
        case 270: return .left
        default: return .up
        }
    }

    private func rotatePreview(to angle: CGFloat) {
        guard let connection = previewLayer?.connection, connection.isVideoRotationAngleSupported(angle) else { return }
        connection.videoRotationAngle = angle
    }

    private func setBufferOrientation(_ orientation: CGImagePropertyOrientation) {
        orientationLock.lock()
        bufferOrientation = orientation
        orientationLock.unlock()
    }

    private var currentOrientation: CGImagePropertyOrientation {
        orientationLock.lock()
        defer { orientationLock.unlock() }
        return bufferOrientation
    }

    // MARK: AVCaptureVideoDataOutputSampleBufferDelegate

    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        let now = CACurrentMediaTime()
        guard now - lastFrameTime >= minimumFrameInterval,
              let pixelBuffer = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        lastFrameTime = now
        onFrame?(pixelBuffer, currentOrientation)
    }
}
