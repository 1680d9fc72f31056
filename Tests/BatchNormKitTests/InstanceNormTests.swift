import Testing
import BatchNormReference
@testable import BatchNormKit

// InstanceNorm (its PyTorch golden file runs in PyTorchGoldenTests, with the
// BatchNorm ones): evaluation with running statistics against the BatchNorm
// reference's eval formulas, which are the same per-channel map; unbatched
// input; PyTorch's momentum-nil quirk; typed errors.

@Suite("InstanceNorm1d and InstanceNorm2d")
struct InstanceNormTests {
    @Test("evaluation with running statistics is BatchNorm's eval map, forward and backward", arguments: [1, 2])
    func evalMatchesReference(spatialRank: Int) throws {
        let n = 3, c = 4, shape = spatialRank == 1 ? [n, c, 6] : [n, c, 2, 3], l = 6
        var rng = ReferenceRandom(seed: 83)
        let norm: _InstanceNorm = spatialRank == 1
            ? try InstanceNorm1d(numFeatures: c, affine: true, trackRunningStats: true)
            : try InstanceNorm2d(numFeatures: c, affine: true, trackRunningStats: true)
        let gamma = (0..<c).map { _ in 0.5 + rng.unit() }, beta = (0..<c).map { _ in rng.normal() }
        let mean = (0..<c).map { _ in 100 * rng.normal() }, variance = (0..<c).map { _ in 0.1 + rng.unit() }
        for (t, v) in [(norm.weight!.value, gamma), (norm.bias!.value, beta), (norm.runningMean!, mean), (norm.runningVar!, variance)] {
            t.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(v[i]) } }
        }
        norm.eval()
        let x = rng.batch(n: n, c: c, l: l).map { $0 + 100 }, dy = rng.normals(n * c * l)
        let y = try norm.forward(.of(shape, x)).scalars, dx = try norm.backward(.of(shape, dy)).scalars
        let rm = norm.runningMean!.scalars.map(Double.init), rv = norm.runningVar!.scalars.map(Double.init)
        let g = norm.weight!.value.scalars.map(Double.init), b = norm.bias!.value.scalars.map(Double.init)
        let wantY = BatchNormReference.forwardEval(x, n: n, c: c, l: l, runningMean: rm, runningVar: rv, gamma: g, beta: b, eps: 1e-5)
        let want = BatchNormReference.backwardEval(gradOutput: dy, input: x, n: n, c: c, l: l, runningMean: rm, runningVar: rv, gamma: g, eps: 1e-5)
        #expect(compareToReference(y, wantY, rtol: 1e-5, atol: 2e-5).ok)
        #expect(compareToReference(dx, want.input, rtol: 1e-5, atol: 2e-5).ok)
        #expect(compareToReference(norm.weight!.grad.scalars, want.gamma, rtol: 1e-4, atol: 1e-4).ok)
        #expect(compareToReference(norm.bias!.grad.scalars, want.beta, rtol: 1e-4, atol: 1e-4).ok)
    }

    @Test("an unbatched (C, L) sample equals the same sample in a batch; momentum nil leaves the buffers, as PyTorch")
    func unbatchedAndMomentum() throws {
        var rng = ReferenceRandom(seed: 89)
        let x = rng.batch(n: 2, c: 3, l: 4)
        let norm = try InstanceNorm1d(numFeatures: 3)
        let batched = try norm.forward(.of([2, 3, 4], x)).scalars
        #expect(try norm.forward(.of([3, 4], Array(x[12...]))).scalars == Array(batched[12...]))
        let frozen = try InstanceNorm1d(numFeatures: 3, momentum: nil, trackRunningStats: true)
        _ = try frozen.forward(.of([2, 3, 4], x))
        #expect(frozen.runningMean!.scalars == [0, 0, 0] && frozen.runningVar!.scalars == [1, 1, 1])
        #expect(frozen.numBatchesTracked == 0)
        #expect(frozen.namedStateEntries(prefix: "").map(\.name) == ["running_mean", "running_var", "num_batches_tracked"])
    }

    @Test("bad arguments and inputs throw typed errors")
    func errors() throws {
        #expect(throws: BatchNormKitError.self) { try InstanceNorm1d(numFeatures: 0) }
        #expect(throws: BatchNormKitError.self) { try InstanceNorm2d(numFeatures: 2, momentum: 2) }
        #expect(throws: BatchNormKitError.self) { try InstanceNorm1d(numFeatures: 2, eps: -1) }
        let norm = try InstanceNorm2d(numFeatures: 2)
        #expect(throws: BatchNormKitError.shapeMismatch(context: "InstanceNorm2d(2)", expected: "(N, 2, H, W) or (2, H, W)", got: [2, 2])) {
            try norm.forward(.of([2, 2], [1, 2, 3, 4]))
        }
        #expect(throws: BatchNormKitError.featureCountMismatch(context: "InstanceNorm2d(2)", expected: 2, got: 3)) {
            try norm.forward(.of([1, 3, 1, 2], [1, 2, 3, 4, 5, 6]))
        }
        // one value per (sample, channel) cannot be normalized in training, as PyTorch says
        #expect(throws: BatchNormKitError.notEnoughValuesPerFeature(context: "InstanceNorm2d(2)", shape: [3, 2, 1, 1])) {
            try norm.forward(.of([3, 2, 1, 1], [1, 2, 3, 4, 5, 6]))
        }
    }
}
