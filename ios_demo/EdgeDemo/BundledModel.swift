// BundledModel.swift -- finds the classifier shipped inside the app and loads it.

import CoreML
import CryptoKit
import Foundation

/// Which model the app runs, and how it becomes a loaded `MLModel`.
///
/// `edge ios install` copies the exported package to `EdgeDemo/Models/EdgeClassifier.mlpackage`.
/// `Models` is a *folder reference* in the Xcode project, so Xcode copies the package into the
/// app unchanged instead of compiling it: the project builds with or without a model, and no
/// Swift class is generated for a particular model. Core ML only loads compiled models
/// (`.mlmodelc`), so a package is compiled on the device at first launch and the result cached.
///
/// Choice of model: `EdgeClassifier.*` first, then any other model in `Models/`, then a model a
/// developer added to the target the usual Xcode way (compiled by Xcode to `Name.mlmodelc` at the
/// bundle root), each group in alphabetical order.
enum BundledModel {
    static let folderName = "Models"
    static let preferredName = "EdgeClassifier"
    static let modelExtensions: Set<String> = ["mlmodelc", "mlpackage", "mlmodel"]

    /// The model file to run, or nil when the app was built without one.
    static func locate(in bundle: Bundle = .main) -> URL? {
        guard let resources = bundle.resourceURL else { return nil }
        let folder = resources.appendingPathComponent(folderName, isDirectory: true)
        let ranked = models(in: folder).sorted(by: preferredFirst) + models(in: resources).sorted(by: preferredFirst)
        return ranked.first
    }

    /// A loaded model, compiling (and caching) it first when it is not compiled yet.
    static func load(_ url: URL) async throws -> MLModel {
        var compiled = url
        if url.pathExtension != "mlmodelc" {
            compiled = try await compiledCopy(of: url)
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all  // Neural Engine / GPU where the model's ops allow it
        return try await MLModel.load(contentsOf: compiled, configuration: configuration)
    }

    private static func models(in folder: URL) -> [URL] {
        let items = (try? FileManager.default.contentsOfDirectory(
            at: folder, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])) ?? []
        return items.filter { modelExtensions.contains($0.pathExtension) }
    }

    private static func preferredFirst(_ lhs: URL, _ rhs: URL) -> Bool {
        let lhsPreferred = lhs.deletingPathExtension().lastPathComponent == preferredName
        let rhsPreferred = rhs.deletingPathExtension().lastPathComponent == preferredName
        if lhsPreferred != rhsPreferred { return lhsPreferred }
        return lhs.lastPathComponent < rhs.lastPathComponent
    }

    /// `source` compiled to `.mlmodelc` in Application Support, reused while the model is unchanged.
    private static func compiledCopy(of source: URL) async throws -> URL {
        let fileManager = FileManager.default
        let cacheRoot = try fileManager
            .url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("CompiledModels", isDirectory: true)
        let key = try fingerprint(of: source)
        let cached = cacheRoot.appendingPathComponent("\(key).mlmodelc", isDirectory: true)
        if fileManager.fileExists(atPath: cached.path) {
            return cached
        }
        // compileModel(at:) writes into a temporary directory the system may purge at any time;
        // Apple's guidance is to move the result somewhere permanent before reusing it.
        let temporary = try await MLModel.compileModel(at: source)
        try? fileManager.removeItem(at: cacheRoot)  // keep only the current model's compilation
        try fileManager.createDirectory(at: cacheRoot, withIntermediateDirectories: true)
        try fileManager.moveItem(at: temporary, to: cached)
        return cached
    }

    /// SHA-256 over every file's relative path and size, and the bytes of the small files (the
    /// manifest and the model description, which carries the metadata and its creation time).
    private static func fingerprint(of package: URL) throws -> String {
        var hasher = SHA256()
        let keys: [URLResourceKey] = [.fileSizeKey, .isRegularFileKey]
        // Paths relative to the package: the app container's path changes with every install.
        let root = package.resolvingSymlinksInPath().path
        let files = FileManager.default.enumerator(at: package, includingPropertiesForKeys: keys)?
            .compactMap { $0 as? URL }
            .sorted { $0.path < $1.path } ?? [package]
        for file in files {
            let values = try file.resourceValues(forKeys: Set(keys))
            guard values.isRegularFile == true else { continue }
            let size = values.fileSize ?? 0
            let relativePath = file.resolvingSymlinksInPath().path.dropFirst(root.count)
            hasher.update(data: Data("\(relativePath):\(size)\n".utf8))
            if size < 1 << 20 {
                let bytes = try Data(contentsOf: file)
                hasher.update(data: bytes)
            }
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
