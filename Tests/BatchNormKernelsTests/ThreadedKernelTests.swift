import Testing
import BatchNormKernels
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

    @Test("GroupNorm forward, normalize and backward streamed", arguments: groupNormShapes)
    func groupNormKernels(shape: GroupNormShape) {
        var rng = TestRandom(79 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), dy = rng.normals(shape.elementCount)
        let gamma = (0..<shape.c).map { _ in Float(0.5 + rng.unit()) }, beta = (0..<shape.c).map { _ in Float(rng.normal()) }
        var y = [Float](repeating: .nan, count: x.count), again = y, dx = y
        var shift = [Float](repeating: .nan, count: shape.rows)
        var meanOffset = [Double](repeating: .nan, count: shape.rows), invStd = meanOffset
        var dGamma = [Float](repeating: 0, count: shape.c), dBeta = dGamma
        var totals = [Double](repeating: 0, count: 2 * shape.c), block = [Float](repeating: 0, count: 2 * shape.c)
        BatchNormKernel._withSettings(threadedSettings) {
            GroupNormKernel.forward(x, shape: shape, gamma: gamma, beta: beta, eps: 1e-5, output: &y,
                                    shift: &shift, meanOffset: &meanOffset, invStd: &invStd)
            GroupNormKernel.normalize(x, shape: shape, gamma: gamma, beta: beta, shift: shift, meanOffset: meanOffset,
                                      invStd: invStd, output: &again)
            GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: gamma, shift: shift,
                                     meanOffset: meanOffset, invStd: invStd, gradInput: &dx,
                                     gammaGrad: &dGamma, betaGrad: &dBeta, totals: &totals, blockSums: &block)
        }
        let g = gamma.map(Double.init)
        let want = GroupNormReference.forward(x, n: shape.n, c: shape.c, groups: shape.groups, l: shape.l,
                                              gamma: g, beta: beta.map(Double.init), eps: 1e-5)
        let yr = closeEnough(y, want, rtol: 1e-6, atol: 2e-5)
        #expect(yr.ok, "y \(yr.worst)")
        #expect(again == y, "normalize with the forward's statistics repeats its pass 2 exactly")
        let ref = GroupNormReference.backward(gradOutput: dy, input: x, n: shape.n, c: shape.c, groups: shape.groups,
                                              l: shape.l, gamma: g, eps: 1e-5)
        let dr = closeEnough(dx, ref.gradInput, rtol: 1e-5, atol: 5e-5)
        #expect(dr.ok, "dx \(dr.worst)")
        let atol = 1e-6 * Double(shape.n * shape.l).squareRoot() + 1e-6
        #expect(closeEnough(dGamma, ref.gammaGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(dBeta, ref.betaGrad, rtol: 1e-5, atol: atol).ok)
    }
}
