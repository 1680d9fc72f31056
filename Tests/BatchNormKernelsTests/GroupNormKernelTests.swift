import Testing
import BatchNormKernels
import KernelSupport
import BatchNormReference

// Same tolerances as the BatchNorm kernel tests, for the same reasons: Float32
// arithmetic with Double row totals against a Double oracle. Outputs and dx of
// O(1) within atol 2e-5 / 5e-5; parameter sums of N·L terms within
// 1e-6·√(N·L) (Float32 partial sums over blocks of 64 terms).

/// LayerNorm rows (groups 1, L 1) short, odd, longer than one 512-value block
/// and numerous enough to fold several 64-sample blocks; GroupNorm with L = 1
/// and L > 1; InstanceNorm runs of 600; groups of a single value; the
/// forward's blocks of short rows (up to 8 rows, in pairs) ending on a pair,
/// on a single row, and rows of an odd number of vectors.
let groupNormShapes: [GroupNormShape] = [
    .init(n: 3, c: 17, groups: 1), .init(n: 4, c: 1000, groups: 1), .init(n: 130, c: 8, groups: 1),
    .init(n: 2, c: 3, groups: 1, l: 5), .init(n: 5, c: 12, groups: 3), .init(n: 2, c: 6, groups: 2, l: 9),
    .init(n: 3, c: 4, groups: 4, l: 600), .init(n: 2, c: 2, groups: 2),
    .init(n: 13, c: 64, groups: 2), .init(n: 9, c: 40, groups: 1), .init(n: 11, c: 256, groups: 1),
]

@Suite("GroupNorm kernels (LayerNorm, GroupNorm, InstanceNorm) against the Double reference")
struct GroupNormKernelTests {
    struct Forward { var y: [Float]; var shift: [Float]; var meanOffset: [Double]; var invStd: [Double] }

    func forward(_ x: [Float], _ shape: GroupNormShape, gamma: [Float], beta: [Float]) -> Forward {
        var out = Forward(y: [Float](repeating: .nan, count: x.count), shift: [Float](repeating: .nan, count: shape.rows),
                          meanOffset: [Double](repeating: .nan, count: shape.rows),
                          invStd: [Double](repeating: .nan, count: shape.rows))
        GroupNormKernel.forward(x, shape: shape, gamma: gamma, beta: beta, eps: 1e-5, output: &out.y,
                                shift: &out.shift, meanOffset: &out.meanOffset, invStd: &out.invStd)
        return out
    }

    func affine(_ c: Int, _ rng: inout TestRandom) -> (gamma: [Float], beta: [Float]) {
        ((0..<c).map { _ in Float(0.5 + rng.unit()) }, (0..<c).map { _ in Float(rng.normal()) })
    }

    @Test("forward: statistics and output match", arguments: groupNormShapes)
    func forwardMatches(shape: GroupNormShape) {
        var rng = TestRandom(31 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let (gamma, beta) = affine(shape.c, &rng)
        let fast = forward(x, shape, gamma: gamma, beta: beta)
        let stats = GroupNormReference.statistics(x, n: shape.n, c: shape.c, groups: shape.groups, l: shape.l, eps: 1e-5)
        let mean = (0..<shape.rows).map { Double(fast.shift[$0]) + fast.meanOffset[$0] }
        #expect(closeEnough(mean, stats.mean, rtol: 1e-5, atol: 1e-6).ok)
        let invStd = closeEnough(fast.invStd, stats.invStd, rtol: 1e-5, atol: 1e-6)
        #expect(invStd.ok, "invStd \(invStd.worst)")
        let ref = GroupNormReference.forward(x, n: shape.n, c: shape.c, groups: shape.groups, l: shape.l,
                                             gamma: gamma.map(Double.init), beta: beta.map(Double.init), eps: 1e-5)
        let y = closeEnough(fast.y, ref, rtol: 1e-6, atol: 2e-5)
        #expect(y.ok, "y \(y.worst)")
    }

    @Test("forward: rows with mean 1e4 and std 0.1 normalize without cancellation")
    func largeMean() {
        let shape = GroupNormShape(n: 3, c: 700, groups: 1)
        var rng = TestRandom(37)
        let x = (0..<shape.elementCount).map { _ in Float(1e4 + 0.1 * rng.normal()) }
        let ones = [Float](repeating: 1, count: shape.c), zeros = [Float](repeating: 0, count: shape.c)
        let fast = forward(x, shape, gamma: ones, beta: zeros)
        let ref = GroupNormReference.forward(x, n: shape.n, c: shape.c, groups: 1, l: 1, gamma: nil, beta: nil, eps: 1e-5)
        // E[x²] − E[x]² in Float32 would lose everything (ulp of 1e8 is 8, σ² is 0.01)
        let y = closeEnough(fast.y, ref, rtol: 0, atol: 1e-4)
        #expect(y.ok, "y \(y.worst)")
    }

    @Test("backward: dx, dγ, dβ match; dγ, dβ accumulate", arguments: groupNormShapes)
    func backwardMatches(shape: GroupNormShape) {
        var rng = TestRandom(41 + UInt64(shape.n))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let dy = rng.normals(x.count)
        let (gamma, beta) = affine(shape.c, &rng)
        let fast = forward(x, shape, gamma: gamma, beta: beta)
        var dx = [Float](repeating: .nan, count: x.count)
        let start = (0..<shape.c).map { _ in Float(rng.normal()) }   // earlier gradients to add to
        var dGamma = start, dBeta = start
        var totals = [Double](repeating: .nan, count: 2 * shape.c), block = [Float](repeating: .nan, count: 2 * shape.c)
        GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: gamma,
                                 shift: fast.shift, meanOffset: fast.meanOffset, invStd: fast.invStd,
                                 gradInput: &dx, gammaGrad: &dGamma, betaGrad: &dBeta,
                                 totals: &totals, blockSums: &block)
        let ref = GroupNormReference.backward(gradOutput: dy, input: x, n: shape.n, c: shape.c, groups: shape.groups,
                                              l: shape.l, gamma: gamma.map(Double.init), eps: 1e-5)
        let r = closeEnough(dx, ref.gradInput, rtol: 1e-5, atol: 5e-5)
        #expect(r.ok, "dx \(r.worst)")
        let atol = 1e-6 * Double(shape.n * shape.l).squareRoot() + 1e-6
        let g = closeEnough(zip(dGamma, start).map { Double($0) - Double($1) }, ref.gammaGrad, rtol: 1e-5, atol: atol)
        #expect(g.ok, "dγ \(g.worst)")
        let b = closeEnough(zip(dBeta, start).map { Double($0) - Double($1) }, ref.betaGrad, rtol: 1e-5, atol: atol)
        #expect(b.ok, "dβ \(b.worst)")
    }

    @Test("backward without dx or parameter gradients computes only what is asked")
    func backwardPartial() {
        let shape = GroupNormShape(n: 4, c: 6, groups: 2, l: 3)
        var rng = TestRandom(43)
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), dy = rng.normals(x.count)
        let (gamma, beta) = affine(shape.c, &rng)
        let fast = forward(x, shape, gamma: gamma, beta: beta)
        var totals = [Double](repeating: 0, count: 2 * shape.c), block = [Float](repeating: 0, count: 2 * shape.c)
        var dx = [Float](repeating: .nan, count: x.count)
        GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: gamma,
                                 shift: fast.shift, meanOffset: fast.meanOffset, invStd: fast.invStd,
                                 gradInput: &dx, gammaGrad: nil, betaGrad: nil, totals: &totals, blockSums: &block)
        let ref = GroupNormReference.backward(gradOutput: dy, input: x, n: shape.n, c: shape.c, groups: shape.groups,
                                              l: shape.l, gamma: gamma.map(Double.init), eps: 1e-5)
        #expect(closeEnough(dx, ref.gradInput, rtol: 1e-5, atol: 5e-5).ok)
        var dGamma = [Float](repeating: 0, count: shape.c), dBeta = dGamma
        GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: gamma,
                                 shift: fast.shift, meanOffset: fast.meanOffset, invStd: fast.invStd,
                                 gradInput: nil, gammaGrad: &dGamma, betaGrad: &dBeta, totals: &totals, blockSums: &block)
        #expect(closeEnough(dGamma, ref.gammaGrad, rtol: 1e-5, atol: 1e-5).ok)
        #expect(closeEnough(dBeta, ref.betaGrad, rtol: 1e-5, atol: 1e-5).ok)
    }

    @Test("nil γ, β are ones and zeros to the bit (one thread and split, streamed or not)",
          arguments: [GroupNormShape(n: 5, c: 12, groups: 3), GroupNormShape(n: 70, c: 37, groups: 1),
                      GroupNormShape(n: 3, c: 4, groups: 4, l: 600)])
    func identityAffine(shape: GroupNormShape) {
        for settings in [_KernelSettings(threadCount: 1, parallelThreshold: 1, streamingThreshold: 1 << 30), threadedSettings] {
            let buffers = groupNormRun(shape, seed: 89, settings: settings, affine: .onesAndZeros)
            let none = groupNormRun(shape, seed: 89, settings: settings, affine: .none)
            #expect(none.y == buffers.y && none.again == buffers.again && none.dx == buffers.dx)
            #expect(none.dGamma == buffers.dGamma && none.dBeta == buffers.dBeta)
            #expect(none.invStd == buffers.invStd)
        }
    }
}

extension GroupNormKernelTests {
    @Test("forward and backward with streaming stores (≥ 8 MB outputs; odd rows put every alignment at the row starts)")
    func streaming() {
        let shape = GroupNormShape(n: 1025, c: 2049, groups: 1)
        var rng = TestRandom(101)
        let x = rng.normals(shape.elementCount), dy = rng.normals(shape.elementCount)
        let (gamma, beta) = affine(shape.c, &rng)
        let fast = forward(x, shape, gamma: gamma, beta: beta)
        let ref = GroupNormReference.forward(x, n: shape.n, c: shape.c, groups: 1, l: 1,
                                             gamma: gamma.map(Double.init), beta: beta.map(Double.init), eps: 1e-5)
        let y = closeEnough(fast.y, ref, rtol: 1e-6, atol: 2e-5)
        #expect(y.ok, "y \(y.worst)")
        var dx = [Float](repeating: .nan, count: x.count)
        var totals = [Double](repeating: 0, count: 2 * shape.c), block = [Float](repeating: 0, count: 2 * shape.c)
        GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: gamma,
                                 shift: fast.shift, meanOffset: fast.meanOffset, invStd: fast.invStd,
                                 gradInput: &dx, gammaGrad: nil, betaGrad: nil, totals: &totals, blockSums: &block)
        let want = GroupNormReference.backward(gradOutput: dy, input: x, n: shape.n, c: shape.c, groups: 1, l: 1,
                                               gamma: gamma.map(Double.init), eps: 1e-5)
        let d = closeEnough(dx, want.gradInput, rtol: 1e-5, atol: 5e-5)
        #expect(d.ok, "dx \(d.worst)")
    }
}
