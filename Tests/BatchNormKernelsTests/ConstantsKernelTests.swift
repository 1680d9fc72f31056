import Testing
import BatchNormKernels
import BatchNormReference

// The per-feature constants kernels and GroupNormKernel.normalize against
// their twins. The constants are computed in Double and rounded once to
// Float32 (scale, bias, gradScale, inputScale, constant): rtol 1e-6 covers
// that rounding (2⁻²⁴ ≈ 6e-8) and the Double differences of evaluation order.

@Suite("Per-feature constants and GroupNorm normalize against their twins")
struct ConstantsKernelTests {
    static let featureCounts = [1, 7, 64]

    @Test("forwardConstants from moments (train), with and without γ, β", arguments: featureCounts)
    func forwardConstantsTrain(c: Int) {
        let shape = BatchNormShape(n: 9, c: c)
        var rng = TestRandom(83 + UInt64(c))
        let x = rng.batch(n: shape.n, c: c)
        var moments = FeatureMoments(featureCount: c)
        x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &moments) }
        let gamma = (0..<c).map { _ in Float(0.5 + rng.unit()) }, beta = (0..<c).map { _ in Float(rng.normal()) }
        for affine in [true, false] {
            var shift = [Float](repeating: .nan, count: c), scale = shift, bias = shift
            var invStd = [Double](repeating: .nan, count: c), meanOffset = invStd
            BatchNormKernel.forwardConstants(moments: moments, gamma: affine ? gamma : nil, beta: affine ? beta : nil, eps: 1e-5,
                                             shift: &shift, scale: &scale, bias: &bias, invStd: &invStd, meanOffset: &meanOffset)
            let ref = BatchNormReference.Moments(count: moments.count, mean: moments.mean, m2: moments.m2)
            let want = BatchNormReference.forwardConstants(
                moments: ref, shift: moments.shift.map(Double.init), gamma: affine ? gamma.map(Double.init) : nil,
                beta: affine ? beta.map(Double.init) : nil, eps: Double(Float(1e-5)))   // the kernel's ε is a Float
            #expect(shift == moments.shift)
            #expect(closeEnough(invStd, want.invStd, rtol: 1e-12, atol: 0).ok)
            #expect(closeEnough(meanOffset, want.meanOffset, rtol: 1e-12, atol: 1e-12).ok)
            #expect(closeEnough(scale, want.scale, rtol: 1e-6, atol: 0).ok)
            let b = closeEnough(bias, want.bias, rtol: 1e-6, atol: 1e-7)
            #expect(b.ok, "bias \(b.worst)")
        }
    }

    @Test("forwardConstants from the running buffers (eval)", arguments: featureCounts)
    func forwardConstantsEval(c: Int) {
        var rng = TestRandom(89 + UInt64(c))
        let mean = (0..<c).map { _ in Float(rng.normal()) }, variance = (0..<c).map { _ in Float(0.5 + rng.unit()) }
        let gamma = (0..<c).map { _ in Float(0.5 + rng.unit()) }, beta = (0..<c).map { _ in Float(rng.normal()) }
        var shift = [Float](repeating: .nan, count: c), scale = shift, bias = shift
        var invStd = [Double](repeating: .nan, count: c), meanOffset = invStd
        BatchNormKernel.forwardConstants(runningMean: mean, runningVar: variance, featureCount: c, gamma: gamma, beta: beta,
                                         eps: 1e-5, shift: &shift, scale: &scale, bias: &bias,
                                         invStd: &invStd, meanOffset: &meanOffset)
        let want = BatchNormReference.forwardConstants(runningVar: variance.map(Double.init), gamma: gamma.map(Double.init),
                                                       beta: beta.map(Double.init), eps: Double(Float(1e-5)))
        #expect(shift == mean && bias == beta && meanOffset == want.meanOffset)
        #expect(closeEnough(invStd, want.invStd, rtol: 1e-12, atol: 0).ok)
        #expect(closeEnough(scale, want.scale, rtol: 1e-6, atol: 0).ok)
    }

    @Test("backwardConstants: dγ, dβ accumulate; batch and fixed statistics", arguments: featureCounts)
    func backwardConstants(c: Int) {
        var rng = TestRandom(97 + UInt64(c))
        let sumGrad = (0..<c).map { _ in 10 * rng.normal() }, shifted = (0..<c).map { _ in 10 * rng.normal() }
        let invStd = (0..<c).map { _ in 0.5 + rng.unit() }, meanOffset = (0..<c).map { _ in rng.normal() }
        let gamma = (0..<c).map { _ in Float(0.5 + rng.unit()) }
        let start = (0..<c).map { _ in Float(rng.normal()) }
        for batchStatistics in [true, false] {
            var sums = shifted, dGamma = start, dBeta = start
            var gradScale = [Float](repeating: .nan, count: c), inputScale = gradScale, constant = gradScale
            BatchNormKernel.backwardConstants(sumGrad: sumGrad, sumGradShifted: &sums, invStd: invStd, meanOffset: meanOffset,
                                              featureCount: c, gamma: gamma, valuesPerFeature: 37,
                                              usedBatchStatistics: batchStatistics, gammaGrad: &dGamma, betaGrad: &dBeta,
                                              gradScale: &gradScale, inputScale: &inputScale, constant: &constant)
            let want = BatchNormReference.backwardConstants(sumGrad: sumGrad, sumGradShifted: shifted, invStd: invStd,
                                                            meanOffset: meanOffset, gamma: gamma.map(Double.init),
                                                            valuesPerFeature: 37, usedBatchStatistics: batchStatistics)
            let added = zip(dGamma, start).map { Double($0) - Double($1) }, addedBeta = zip(dBeta, start).map { Double($0) - Double($1) }
            // dγ, dβ of O(10) added to O(1) in Float32: a few ulps of 10
            #expect(closeEnough(added, want.gammaGrad, rtol: 1e-6, atol: 4e-6).ok)
            #expect(closeEnough(addedBeta, want.betaGrad, rtol: 1e-6, atol: 4e-6).ok)
            #expect(closeEnough(gradScale, want.gradScale, rtol: 1e-6, atol: 0).ok)
            let k = closeEnough(inputScale, want.inputScale, rtol: 1e-6, atol: 1e-9)
            #expect(k.ok, "inputScale \(k.worst)")
            let b = closeEnough(constant, want.constant, rtol: 1e-6, atol: 1e-8)
            #expect(b.ok, "constant \(b.worst)")
        }
    }

    @Test("GroupNormKernel.normalize with given statistics", arguments: groupNormShapes)
    func groupNormNormalize(shape: GroupNormShape) {
        var rng = TestRandom(101 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let gamma = (0..<shape.c).map { _ in Float(0.5 + rng.unit()) }, beta = (0..<shape.c).map { _ in Float(rng.normal()) }
        let shift = (0..<shape.rows).map { _ in Float(rng.normal()) }
        let meanOffset = (0..<shape.rows).map { _ in 0.1 * rng.normal() }, invStd = (0..<shape.rows).map { _ in 0.5 + rng.unit() }
        var y = [Float](repeating: .nan, count: x.count)
        GroupNormKernel.normalize(x, shape: shape, gamma: gamma, beta: beta, shift: shift, meanOffset: meanOffset,
                                  invStd: invStd, output: &y)
        // the kernel rounds meanOffset and invStd to Float32 before use: so does the oracle's input
        let mean = (0..<shape.rows).map { Double(shift[$0]) + Double(Float(meanOffset[$0])) }
        let want = GroupNormReference.normalize(x, n: shape.n, c: shape.c, groups: shape.groups, l: shape.l,
                                                gamma: gamma.map(Double.init), beta: beta.map(Double.init),
                                                mean: mean, invStd: invStd.map { Double(Float($0)) })
        let r = closeEnough(y, want, rtol: 1e-6, atol: 2e-5)
        #expect(r.ok, "y \(r.worst)")
    }
}
