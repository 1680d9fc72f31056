import Testing
import BatchNormKernels
import KernelSupport
import BatchNormReference
@testable import BatchNormKit

// The layers on the kernels' threaded and streaming paths (two threads,
// every batch split, every output streamed; for this suite's thread only,
// see ThreadedKernelTests): what `bnkbench --smoke` used to check.
// Tolerances as BatchNorm1dTests.

@Suite("BatchNorm, LayerNorm and GroupNorm layers on two kernel threads with streaming stores", .serialized)
struct ThreadedLayerTests {
    static let settings = _KernelSettings(threadCount: 2, parallelThreshold: 1, streamingThreshold: 1)

    @Test("BatchNorm1d / BatchNorm2d: y, running statistics, dx, dγ, dβ", arguments: [[70, 9], [22, 1024], [4, 3, 9], [3, 4, 2, 5]])
    func batchNorm(shape: [Int]) throws {
        let n = shape[0], c = shape[1], l = shape.dropFirst(2).reduce(1, *)
        var rng = ReferenceRandom(seed: UInt64(7 * n + c))
        let x = rng.batch(n: n, c: c, l: l), dy = rng.normals(x.count)
        let bn: _BatchNorm = shape.count == 4 ? try BatchNorm2d(numFeatures: c) : try BatchNorm1d(numFeatures: c)
        let ones = [Double](repeating: 1, count: c), zeros = [Double](repeating: 0, count: c)
        let (y, dx) = try BatchNormKernel._withSettings(Self.settings) {
            (try bn.forward(.of(shape, x)).scalars, try bn.backward(.of(shape, dy)).scalars)
        }
        let want = BatchNormReference.forwardTrain(x, n: n, c: c, l: l, gamma: ones, beta: zeros, eps: 1e-5)
        let yr = expectClose(y, want, rtol: 1e-5, atol: 2e-5, "y")
        #expect(yr.ok, "\(yr.message)")
        var rm = zeros, rv = ones, tracked = 0
        BatchNormReference.updateRunningStatistics(runningMean: &rm, runningVar: &rv,
                                                   moments: BatchNormReference.moments(x, n: n, c: c, l: l),
                                                   momentum: 0.1, numBatchesTracked: &tracked)
        #expect(expectClose(bn.runningMean!.scalars, rm, rtol: 1e-5, atol: 1e-6, "running_mean").ok)
        #expect(expectClose(bn.runningVar!.scalars, rv, rtol: 1e-5, atol: 1e-6, "running_var").ok)
        let g = BatchNormReference.backwardTrain(gradOutput: dy, input: x, n: n, c: c, l: l, gamma: ones, eps: 1e-5)
        let dr = expectClose(dx, g.input, rtol: 1e-4, atol: 1e-4, "dx")
        #expect(dr.ok, "\(dr.message)")
        #expect(expectClose(bn.weight!.grad.scalars, g.gamma, rtol: 1e-4, atol: 1e-4, "dγ").ok)
        #expect(expectClose(bn.bias!.grad.scalars, g.beta, rtol: 1e-4, atol: 1e-4, "dβ").ok)
    }

    @Test("LayerNorm and GroupNorm: y, dx, dγ, dβ", arguments: [[70, 9, 1, 1], [150, 24, 1, 1], [4, 6, 3, 9]])
    func groupNorm(dims: [Int]) throws {
        let n = dims[0], c = dims[1], groups = dims[2], l = dims[3]
        let shape = l == 1 ? [n, c] : [n, c, l]
        var rng = ReferenceRandom(seed: UInt64(11 * n + c))
        let x = rng.batch(n: n, c: c, l: l), dy = rng.normals(x.count)
        let layer: _GroupNormalization = groups == 1 && l == 1
            ? try LayerNorm(normalizedShape: [c]) : try GroupNorm(numGroups: groups, numChannels: c)
        let (y, dx) = try BatchNormKernel._withSettings(Self.settings) {
            (try layer.forward(.of(shape, x)).scalars, try layer.backward(.of(shape, dy)).scalars)
        }
        let want = GroupNormReference.forward(x, n: n, c: c, groups: groups, l: l, gamma: nil, beta: nil, eps: 1e-5)
        #expect(expectClose(y, want, rtol: 1e-5, atol: 2e-5, "y").ok)
        let g = GroupNormReference.backward(gradOutput: dy, input: x, n: n, c: c, groups: groups, l: l, gamma: nil, eps: 1e-5)
        #expect(expectClose(dx, g.gradInput, rtol: 1e-4, atol: 1e-4, "dx").ok)
        // the split's parts add their parameter sums (two parts, each its own totals)
        #expect(expectClose(layer.weight!.grad.scalars, g.gammaGrad, rtol: 1e-4, atol: 1e-4, "dγ").ok)
        #expect(expectClose(layer.bias!.grad.scalars, g.betaGrad, rtol: 1e-4, atol: 1e-4, "dβ").ok)
    }
}
