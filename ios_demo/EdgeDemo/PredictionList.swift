// PredictionList.swift -- the top labels with confidence bars, and the inference latency.

import SwiftUI

struct PredictionList: View {
    let classification: Classification

    var body: some View {
        VStack(alignment: .leading, spacing: 10) {
            ForEach(Array(classification.top.enumerated()), id: \.element.id) { rank, prediction in
                VStack(alignment: .leading, spacing: 4) {
                    HStack {
                        Text(prediction.label)
                            .font(rank == 0 ? .headline : .subheadline)
                            .lineLimit(1)
                        Spacer()
                        Text(Double(prediction.confidence), format: .percent.precision(.fractionLength(1)))
                            .font(.subheadline)
                            .monospacedDigit()
                    }
                    ProgressView(value: Double(min(max(prediction.confidence, 0), 1)))
                        .tint(rank == 0 ? Color.accentColor : Color.secondary)
                }
            }
            Text("\(classification.milliseconds, specifier: "%.1f") ms per inference (Vision + Core ML)")
                .font(.caption)
                .foregroundStyle(.secondary)
                .monospacedDigit()
        }
    }
}
