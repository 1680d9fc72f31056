import Foundation
import Testing
@testable import BatchNormKit

// Folding eval-mode BatchNorm into the adjacent Linear: the formula, the
// equality of outputs (within 1e-5) for both placements, the exported file's
// names, and the cases that cannot be folded.

/// Max |a − b| over two equally long arrays.
private func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Suite("Folding BatchNorm into Linear")
struct FoldedNetworkTests {
    // MARK: - The formula

    @Test("Linear → BatchNorm folds to W' = s·W, b' = (b − μ)·s + β")
    func foldBackwardFormula() throws {
        let linear = try Linear(inFeatures: 2, outFeatures: 2)
        try linear.weight.value.assign(from: Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        try linear.bias!.value.assign(from: Tensor(shape: [2], scalars: [0.5, -1]))
        let norm = try BatchNorm1d(numFeatures: 2, eps: 1e-5)
        try norm.weight!.value.assign(from: Tensor(shape: [2], scalars: [2, 0.5]))
        try norm.bias!.value.assign(from: Tensor(shape: [2], scalars: [0.25, 1]))
        try norm.runningMean!.assign(from: Tensor(shape: [2], scalars: [1, -2]))
        try norm.runningVar!.assign(from: Tensor(shape: [2], scalars: [4, 0.25]))

        let folded = try Sequential(linear, norm, ReLU()).foldingBatchNorm()
        #expect(folded.layers.count == 2 && folded.layers[1] is ReLU)
        let result = try #require(folded.layers[0] as? Linear)
        let eps = Double(Float(1e-5))
        let s = [2 / (4 + eps).squareRoot(), 0.5 / (0.25 + eps).squareRoot()]
        let w: [Double] = [1 * s[0], 2 * s[0], 3 * s[1], 4 * s[1]]
        let b: [Double] = [(0.5 - 1) * s[0] + 0.25, (-1 + 2) * s[1] + 1]
        // Computed in Double, rounded once: equal up to that one rounding.
        #expect(largestDifference(result.weight.value.scalars, w.map { Float($0) }) <= 1e-6)
        #expect(largestDifference(result.bias!.value.scalars, b.map { Float($0) }) <= 1e-6)
    }

    // MARK: - Same outputs

    @Test("the folded seed network matches eval-mode outputs within 1e-5", arguments: [NormPlacement.before, .after])
    func foldedMatchesUnfolded(placement: NormPlacement) throws {
        let network = try checkpointTestNetwork(placement: placement, inputSize: 784, hiddenSizes: [256, 64], classes: 10)
        network.eval()
        let folded = try network.foldingBatchNorm()
        #expect(!folded.useBatchNorm && folded.architecture.hiddenSizes == [256, 64])
        #expect(!folded.layers.layers.contains { $0 is BatchNorm1d })
        var generator = SplitMix64(seed: 11)
        let x = checkpointTestInput(rows: 64, columns: 784, &generator)
        let want = try network.forward(x).scalars
        let got = try folded.forward(x).scalars
        #expect(largestDifference(want, got) <= 1e-5, "max difference \(largestDifference(want, got))")
        #expect(network.isTraining == false, "folding leaves the source's mode alone")
    }

    @Test("the folded network shares nothing with the original")
    func independentCopy() throws {
        let network = try checkpointTestNetwork()
        network.eval()
        let folded = try network.foldingBatchNorm()
        var generator = SplitMix64(seed: 12)
        let x = checkpointTestInput(rows: 4, columns: 12, &generator)
        let before = try folded.forward(x).scalars
        for p in network.parameters() { p.value.fill(0) }
        #expect(try folded.forward(x).scalars == before)
    }

    @Test("a network without BatchNorm is copied unchanged")
    func nothingToFold() throws {
        let network = try checkpointTestNetwork(batchNorm: false)
        network.eval()
        let folded = try network.foldingBatchNorm()
        var generator = SplitMix64(seed: 13)
        let x = checkpointTestInput(rows: 4, columns: 12, &generator)
        #expect(try folded.forward(x).scalars == network.forward(x).scalars)
    }

    @Test("folding PyTorch's trained network reproduces PyTorch's logits within 1e-5")
    func pyTorchFixture() throws {
        let statePath = checkpointFixturePath("seed_state_dict.safetensors")
        let evalPath = checkpointFixturePath("seed_eval.safetensors")
        for path in [statePath, evalPath] {
            try #require(FileManager.default.fileExists(atPath: path),
                         "missing PyTorch fixture \(path): run `make fixtures` (Scripts/make_fixtures.py, needs torch)")
        }
        let folded = try SeedNetwork(checkpoint: statePath).foldingBatchNorm()
        let golden = try SafeTensorsFile(contentsOf: evalPath)
        let x = try #require(golden.tensors["x"]), logits = try #require(golden.tensors["logits"])
        let got = try folded.forward(Tensor(shape: x.shape, scalars: x.floats)).scalars
        let difference = largestDifference(got, try logits.floats)
        #expect(difference <= 1e-5, "max difference \(difference)")
    }

    // MARK: - Export

    @Test("the export has PyTorch's folded-MLP names and loads back to the same outputs")
    func exportRoundTrip() throws {
        let directory = makeTemporaryDirectory("FoldedNetworkTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/folded.safetensors"
        let network = try checkpointTestNetwork(placement: .after)
        let folded = try network.exportFolded(to: path, metadata: ["note": "x"])

        let file = try SafeTensorsFile(contentsOf: path)
        #expect(Set(file.tensors.keys) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                                           "layers.4.weight", "layers.4.bias"])
        #expect(file.tensors["layers.2.weight"]?.shape == [6, 8])
        #expect(file.metadata["folded"] == "true" && file.metadata["folded_from"] == "batchnorm/after")
        #expect(file.metadata["norm"] == "none" && file.metadata["note"] == "x")

        let loaded = try SeedNetwork(checkpoint: path)
        loaded.eval()
        var generator = SplitMix64(seed: 14)
        let x = checkpointTestInput(rows: 8, columns: 12, &generator)
        #expect(try loaded.forward(x).scalars == folded.forward(x).scalars)
    }

    // MARK: - What cannot be folded

    @Test("BatchNorm with no adjacent Linear, without running statistics, or unknown layers throw")
    func unfoldable() throws {
        #expect(throws: BatchNormKitError.self) {
            _ = try Sequential(Linear(inFeatures: 3, outFeatures: 2), ReLU(), BatchNorm1d(numFeatures: 2)).foldingBatchNorm()
        }
        #expect(throws: BatchNormKitError.self) {
            _ = try Sequential(Linear(inFeatures: 3, outFeatures: 2), BatchNorm1d(numFeatures: 2, trackRunningStats: false))
                .foldingBatchNorm()
        }
        #expect(throws: BatchNormKitError.self) {
            _ = try Sequential(Sequential(Linear(inFeatures: 3, outFeatures: 2))).foldingBatchNorm()
        }
    }
}
