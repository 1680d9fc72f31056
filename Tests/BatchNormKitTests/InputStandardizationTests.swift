import Testing
@testable import BatchNormKit

@Suite("InputStandardization")
struct InputStandardizationTests {
    @Test("fitted statistics standardize the training set to mean 0, std 1")
    func fitAndApply() throws {
        let samples = try LabeledSamples(features: [0, 0.5, 1, 0.25, 0.75, 1, 0, 0.5], labels: [0, 1, 2, 3], featureCount: 2)
        let map = try InputStandardization(fittedTo: samples)
        #expect(abs(map.mean - 0.5) < 1e-7)
        let out = try map.apply(to: samples)
        let mean = out.features.reduce(0, +) / Float(out.features.count)
        let variance = out.features.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(out.features.count)
        #expect(abs(mean) < 1e-6 && abs(variance - 1) < 1e-5)
        #expect(out.labels == samples.labels)
    }

    @Test("it travels through checkpoint metadata, and is absent from PyTorch files")
    func metadataRoundTrip() throws {
        let map = try InputStandardization(mean: 0.286, std: 0.353)
        #expect(InputStandardization(metadata: map.metadata) == map)
        #expect(InputStandardization(metadata: [:]) == nil)
        #expect(InputStandardization(metadata: ["input_mean": "0.2", "input_std": "0"]) == nil)
    }

    @Test("a constant training set (std 0) is a typed error, not a division by zero")
    func constantInput() throws {
        let samples = try LabeledSamples(features: [0.5, 0.5, 0.5, 0.5], labels: [0, 1], featureCount: 2)
        #expect(throws: BatchNormKitError.self) { try InputStandardization(fittedTo: samples) }
    }
}
