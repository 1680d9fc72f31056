import Testing
import BatchNormKernels
import KernelSupport
import BatchNormReference

// The kernels' threaded and streaming paths on tiny batches: two threads,
// every batch split (parallelThreshold 1) and every output written with
// streaming stores (streamingThreshold 1). The settings hold for this
// suite's calling thread only (`BatchNormKernel._withSettings`), so suites
// running at the same time keep the defaults. Serialized: the kernels' one
// worker pool serves one parallel call at a time (a second call would run
// on its own thread, and the split would go untested).
//
// Tolerances as BatchNormKernelTests: a split batch adds the same Float32
// block sums in another order of Double additions, a few ulps of the totals.

let threadedSettings = _KernelSettings(threadCount: 2, parallelThreshold: 1, streamingThreshold: 1)

/// The kernel shapes, plus the two that reach the other row groupings:
/// rows 4 KB apart (two and four rows at a time) and a batch over 1 MB with
/// short rows (one row at a time).
let threadedShapes = kernelShapes + [BatchNormShape(n: 22, c: 1024), BatchNormShape(n: 2051, c: 131)]

/// γ, β of a GroupNorm run: random, or ones and zeros passed as buffers
/// (`onesAndZeros`) or as nil (`none`).
enum GroupNormAffine { case random, onesAndZeros, none }

/// GroupNorm's inputs (from `seed`) and its forward, normalize and
/// backward outputs on `settings`.
struct GroupNormRun {
    var x, dy, gamma, beta: [Float]
    var y, again, dx, shift: [Float]
    var meanOffset, invStd: [Double]
    var dGamma, dBeta: [Float]
}

func groupNormRun(_ shape: GroupNormShape, seed: UInt64, settings: _KernelSettings,
                  affine: GroupNormAffine = .random) -> GroupNormRun {
    var rng = TestRandom(seed + UInt64(shape.elementCount))
    let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), dy = rng.normals(shape.elementCount)
    var gamma = (0..<shape.c).map { _ in Float(0.5 + rng.unit()) }, beta = (0..<shape.c).map { _ in Float(rng.normal()) }
    if affine != .random { gamma = [Float](repeating: 1, count: shape.c); beta = [Float](repeating: 0, count: shape.c) }
    let nan = [Float](repeating: .nan, count: x.count), rows = [Double](repeating: .nan, count: shape.rows)
    var r = GroupNormRun(x: x, dy: dy, gamma: gamma, beta: beta, y: nan, again: nan, dx: nan,
                         shift: [Float](repeating: .nan, count: shape.rows), meanOffset: rows, invStd: rows,
                         dGamma: [Float](repeating: 0, count: shape.c), dBeta: [Float](repeating: 0, count: shape.c))
    var totals = [Double](repeating: 0, count: 2 * shape.c), block = [Float](repeating: 0, count: 2 * shape.c)
    BatchNormKernel._withSettings(settings) { gamma.withUnsafeBufferPointer { gp in beta.withUnsafeBufferPointer { bp in
        let g = affine == .none ? nil : gp.baseAddress, b = affine == .none ? nil : bp.baseAddress
        GroupNormKernel.forward(x, shape: shape, gamma: g, beta: b, eps: 1e-5, output: &r.y,
                                shift: &r.shift, meanOffset: &r.meanOffset, invStd: &r.invStd)
        GroupNormKernel.normalize(x, shape: shape, gamma: g, beta: b, shift: r.shift, meanOffset: r.meanOffset,
                                  invStd: r.invStd, output: &r.again)
        GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: g, shift: r.shift,
                                 meanOffset: r.meanOffset, invStd: r.invStd, gradInput: &r.dx,
                                 gammaGrad: &r.dGamma, betaGrad: &r.dBeta, totals: &totals, blockSums: &block)
    } } }
    return r
}

@Suite("Kernels on two threads with streaming stores against the Double reference", .serialized)
struct ThreadedKernelTests {
    @Test("moments, normalizeAffine, backwardReduce, backwardInput split in two and streamed", arguments: threadedShapes)
    func batchNormKernels(shape: BatchNormShape) {
        var rng = TestRandom(71 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), dy = rng.normals(shape.elementCount)
        let c = shape.c
        let shift = (0..<c).map { _ in Float(rng.normal()) }, scale = (0..<c).map { _ in Float(0.5 + rng.unit()) }
        let bias = (0..<c).map { _ in Float(rng.normal()) }
        var moments = FeatureMoments(featureCount: c)
        var y = [Float](repeating: .nan, count: x.count), dx = y
        var s1 = [Double](repeating: .nan, count: c), s2 = s1
        var scratch = [Float](repeating: 0, count: 2 * c)
        BatchNormKernel._withSettings(threadedSettings) {
            x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &moments) }
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    BatchNormKernel.normalizeAffine(xp.baseAddress!, shape: shape, shift: shift, scale: scale, bias: bias,
                                                    output: yp.baseAddress!)
                }
            }
            BatchNormKernel.backwardReduce(gradOutput: dy, input: x, shape: shape, shift: shift,
                                           sumGrad: &s1, sumGradShifted: &s2, scratch: &scratch)
            BatchNormKernel.backwardInput(gradOutput: dy, input: x, shape: shape, shift: shift,
                                          gradScale: scale, inputScale: bias, constant: shift, gradInput: &dx)
        }
        let ref = BatchNormReference.moments(x, n: shape.n, c: c, l: shape.l)
        #expect(moments.count == ref.count)
        let mean = closeEnough(moments.mean, ref.mean, rtol: 1e-5, atol: 1e-6)
        #expect(mean.ok, "mean \(mean.worst)")
        let variance = closeEnough((0..<c).map(moments.biasedVariance), ref.biasedVariance, rtol: 1e-5, atol: 1e-6)
        #expect(variance.ok, "variance \(variance.worst)")
        let d = shift.map(Double.init), a = scale.map(Double.init), b = bias.map(Double.init)
        let wantY = BatchNormReference.normalizeAffine(x, n: shape.n, c: c, l: shape.l, shift: d, scale: a, bias: b)
        let yr = closeEnough(y, wantY, rtol: 1e-6, atol: 2e-5)
        #expect(yr.ok, "y \(yr.worst)")
        let sums = BatchNormReference.backwardReduce(gradOutput: dy, input: x, n: shape.n, c: c, l: shape.l, shift: d)
        let atol = 1e-6 * Double(shape.valuesPerFeature).squareRoot()
        #expect(closeEnough(s1, sums.sumGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(s2, sums.sumGradShifted, rtol: 1e-5, atol: atol).ok)
        let wantDx = BatchNormReference.backwardInput(gradOutput: dy, input: x, n: shape.n, c: c, l: shape.l,
                                                      shift: d, gradScale: a, inputScale: b, constant: d)
        let dr = closeEnough(dx, wantDx, rtol: 1e-5, atol: 5e-5)
        #expect(dr.ok, "dx \(dr.worst)")
    }

    @Test("a split batch's moments equal Chan's merge of its halves", arguments: [BatchNormShape(n: 130, c: 17)])
    func splitMatchesMerge(shape: BatchNormShape) {
        var rng = TestRandom(73)
        let x = rng.batch(n: shape.n, c: shape.c)
        var whole = FeatureMoments(featureCount: shape.c)
        BatchNormKernel._withSettings(threadedSettings) {
            x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &whole) }
        }
        let half = shape.n / 2, split = half * shape.c
        var a = FeatureMoments(featureCount: shape.c), b = a
        Array(x[..<split]).withUnsafeBufferPointer {
            BatchNormKernel.moments($0.baseAddress!, shape: BatchNormShape(n: half, c: shape.c), into: &a)
        }
        Array(x[split...]).withUnsafeBufferPointer {
            BatchNormKernel.moments($0.baseAddress!, shape: BatchNormShape(n: shape.n - half, c: shape.c), into: &b)
        }
        a.merge(b)
        #expect(closeEnough(whole.mean, a.mean, rtol: 1e-6, atol: 1e-7).ok)
        #expect(closeEnough(whole.m2, a.m2, rtol: 1e-6, atol: 1e-6).ok)
    }

    @Test("GroupNorm forward, normalize and backward split and streamed", arguments: groupNormShapes)
    func groupNormKernels(shape: GroupNormShape) {
        let r = groupNormRun(shape, seed: 79, settings: threadedSettings)
        let g = r.gamma.map(Double.init)
        let want = GroupNormReference.forward(r.x, n: shape.n, c: shape.c, groups: shape.groups, l: shape.l,
                                              gamma: g, beta: r.beta.map(Double.init), eps: 1e-5)
        let yr = closeEnough(r.y, want, rtol: 1e-6, atol: 2e-5)
        #expect(yr.ok, "y \(yr.worst)")
        #expect(r.again == r.y, "normalize with the forward's statistics repeats its pass 2 exactly")
        let ref = GroupNormReference.backward(gradOutput: r.dy, input: r.x, n: shape.n, c: shape.c, groups: shape.groups,
                                              l: shape.l, gamma: g, eps: 1e-5)
        let dr = closeEnough(r.dx, ref.gradInput, rtol: 1e-5, atol: 5e-5)
        #expect(dr.ok, "dx \(dr.worst)")
        let atol = 1e-6 * Double(shape.n * shape.l).squareRoot() + 1e-6
        #expect(closeEnough(r.dGamma, ref.gammaGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(r.dBeta, ref.betaGrad, rtol: 1e-5, atol: atol).ok)
    }

    // Each statistics row is one thread's alone, so y, the statistics and dx
    // of a split batch are the single thread's to the bit; only dγ, dβ add
    // the parts' Double totals in another order (a few ulps).
    @Test("GroupNorm and LayerNorm split in two: rows exactly as on one thread, dγ and dβ within rounding",
          arguments: groupNormShapes + [GroupNormShape(n: 150, c: 24, groups: 1), GroupNormShape(n: 7, c: 6, groups: 3, l: 33)])
    func groupNormSplitMatchesOneThread(shape: GroupNormShape) {
        let split = groupNormRun(shape, seed: 83, settings: threadedSettings)
        let one = groupNormRun(shape, seed: 83, settings: _KernelSettings(threadCount: 1, parallelThreshold: 1, streamingThreshold: 1))
        #expect(split.y == one.y && split.again == one.again && split.dx == one.dx)
        #expect(split.shift == one.shift && split.meanOffset == one.meanOffset && split.invStd == one.invStd)
        let atol = 1e-6 * Double(shape.n * shape.l).squareRoot()
        #expect(closeEnough(split.dGamma, one.dGamma, rtol: 1e-6, atol: atol).ok)
        #expect(closeEnough(split.dBeta, one.dBeta, rtol: 1e-6, atol: atol).ok)
    }
}
