// ModelInfoScreen.swift -- everything the bundled model says about itself.

import SwiftUI

struct ModelInfoScreen: View {
    let info: ModelInfo

    var body: some View {
        NavigationStack {
            List {
                if !info.warnings.isEmpty {
                    Section("Warnings") {
                        ForEach(info.warnings, id: \.self) { warning in
                            Label(warning, systemImage: "exclamationmark.triangle").foregroundStyle(.orange)
                        }
                    }
                }
                Section("Model") {
                    row("Name", info.modelName)
                    row("Version", info.modelVersion)
                    row("Backbone", info.backbone)
                    row("Source run", info.sourceRun)
                    row("Exported by", "edge \(info.edgeVersion)")
                    row("File", info.fileName)
                }
                Section {
                    row("Input size", "\(info.inputWidth) × \(info.inputHeight) px (w × h)")
                    row("Training resize", info.resize)
                    row("Vision crop & scale", ".\(info.cropAndScale.name)")
                    row("Normalization", info.normalization)
                } header: {
                    Text("Input")
                } footer: {
                    Text("Normalization is built into the model: the app passes raw camera pixels.")
                }
                Section("Labels (\(info.labels.count))") {
                    ForEach(Array(info.labels.enumerated()), id: \.offset) { index, label in
                        row("\(index)", label)
                    }
                }
                Section("Metadata") {
                    ForEach(info.metadata) { entry in
                        VStack(alignment: .leading, spacing: 2) {
                            Text(entry.key).font(.caption).foregroundStyle(.secondary)
                            Text(entry.value).font(.footnote.monospaced()).lineLimit(6).textSelection(.enabled)
                        }
                    }
                }
            }
            .navigationTitle(info.modelName)
        }
    }

    private func row(_ title: String, _ value: String) -> some View {
        LabeledContent(title) {
            Text(value).multilineTextAlignment(.trailing).textSelection(.enabled)
        }
    }
}
