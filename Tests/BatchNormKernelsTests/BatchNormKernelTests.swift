import Testing
import BatchNormKernels
import BatchNormReference

// Tolerances: the kernels compute in Float32 (ε = 6e-8) with Double totals;
// the reference is Double throughout. Statistics of O(1) data agree to a few
// Float32 ulps of the data's scale: rtol 1e-5, atol 1e-6. Normalized outputs
// (O(1), ~5 rounded operations each) agree to atol 2e-5.

@Suite("BatchNorm kernels against the Double reference")
struct BatchNormKernelTests {
    func moments(_ x: [Float], _ shape: BatchNormShape) -> FeatureMoments {
        var m = FeatureMoments(featureCount: shape.c)
        x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &m) }
        return m
    }

    @Test("moments: mean and M2 match", arguments: kernelShapes)
    func momentsMatch(shape: BatchNormShape) {
        var rng = TestRandom(UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let fast = moments(x, shape)
        let ref = BatchNormReference.moments(x, n: shape.n, c: shape.c, l: shape.l)
        #expect(fast.count == ref.count)
        let mean = closeEnough(fast.mean, ref.mean, rtol: 1e-5, atol: 1e-6)
        #expect(mean.ok, "mean \(mean.worst)")
        let variance = closeEnough((0..<shape.c).map(fast.biasedVariance), ref.biasedVariance, rtol: 1e-5, atol: 1e-6)
        #expect(variance.ok, "variance \(variance.worst)")
    }

    @Test("moments: mean 1e4, std 0.1 keeps its variance (no E[x²]−E[x]² cancellation)")
    func momentsLargeMean() {
        let shape = BatchNormShape(n: 4096, c: 3)
        var rng = TestRandom(7)
        let x = (0..<shape.elementCount).map { _ in Float(1e4 + 0.1 * rng.normal()) }
        let fast = moments(x, shape)
        let ref = BatchNormReference.moments(x, n: shape.n, c: shape.c)
        // The naive Float32 formula loses every digit here: E[x²] ≈ 1e8 has
        // an ulp of 8, the variance is 0.01. Demand 1e-4 relative.
        let v = closeEnough((0..<3).map(fast.biasedVariance), ref.biasedVariance, rtol: 1e-4, atol: 0)
        #expect(v.ok, "variance \(v.worst)")
        #expect(abs(fast.biasedVariance(0) - 0.01) < 0.001)
    }

    @Test("moments: Chan's merge of two halves equals the whole batch", arguments: [BatchNormShape(n: 10, c: 17), BatchNormShape(n: 6, c: 3, l: 7)])
    func chanMerge(shape: BatchNormShape) {
        var rng = TestRandom(11)
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let half = shape.n / 2
        let split = half * shape.c * shape.l
        var a = moments(Array(x[..<split]), BatchNormShape(n: half, c: shape.c, l: shape.l))
        let b = moments(Array(x[split...]), BatchNormShape(n: shape.n - half, c: shape.c, l: shape.l))
        a.merge(b)
        let ref = BatchNormReference.moments(x, n: shape.n, c: shape.c, l: shape.l)
        #expect(a.count == shape.valuesPerFeature)
        #expect(closeEnough(a.mean, ref.mean, rtol: 1e-5, atol: 1e-6).ok)
        #expect(closeEnough(a.m2, ref.m2, rtol: 1e-5, atol: 1e-6).ok)
    }

    @Test("normalizeAffine matches", arguments: kernelShapes)
    func normalizeMatches(shape: BatchNormShape) {
        var rng = TestRandom(3 + UInt64(shape.c))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let shift = (0..<shape.c).map { _ in Float(rng.normal()) }
        let scale = (0..<shape.c).map { _ in Float(0.5 + rng.unit()) }
        let bias = (0..<shape.c).map { _ in Float(rng.normal()) }
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                BatchNormKernel.normalizeAffine(xp.baseAddress!, shape: shape, shift: shift, scale: scale, bias: bias, output: yp.baseAddress!)
            }
        }
        let ref = BatchNormReference.normalizeAffine(x, n: shape.n, c: shape.c, l: shape.l,
            shift: shift.map(Double.init), scale: scale.map(Double.init), bias: bias.map(Double.init))
        let r = closeEnough(y, ref, rtol: 1e-6, atol: 2e-5)
        #expect(r.ok, "\(r.worst)")
    }

    @Test("backwardReduce and backwardInput match", arguments: kernelShapes)
    func backwardMatches(shape: BatchNormShape) {
        var rng = TestRandom(5 + UInt64(shape.n))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let dy = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let shift = (0..<shape.c).map { _ in Float(rng.normal()) }
        var s1 = [Double](repeating: .nan, count: shape.c), s2 = s1
        var scratch = [Float](repeating: 0, count: 2 * shape.c)
        BatchNormKernel.backwardReduce(gradOutput: dy, input: x, shape: shape, shift: shift,
                                       sumGrad: &s1, sumGradShifted: &s2, scratch: &scratch)
        let ref = BatchNormReference.backwardReduce(gradOutput: dy, input: x, n: shape.n, c: shape.c, l: shape.l,
                                                    shift: shift.map(Double.init))
        // sums of N·L terms of O(1): Float32 block sums, atol grows with √(N·L)
        let atol = 1e-6 * Double(shape.valuesPerFeature).squareRoot()
        #expect(closeEnough(s1, ref.sumGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(s2, ref.sumGradShifted, rtol: 1e-5, atol: atol).ok)

        let g = (0..<shape.c).map { _ in Float(rng.unit()) }
        let k = (0..<shape.c).map { _ in Float(rng.normal()) }
        let b = (0..<shape.c).map { _ in Float(rng.normal()) }
        var dx = [Float](repeating: .nan, count: x.count)
        BatchNormKernel.backwardInput(gradOutput: dy, input: x, shape: shape, shift: shift,
                                      gradScale: g, inputScale: k, constant: b, gradInput: &dx)
        let refDx = BatchNormReference.backwardInput(gradOutput: dy, input: x, n: shape.n, c: shape.c, l: shape.l,
            shift: shift.map(Double.init), gradScale: g.map(Double.init), inputScale: k.map(Double.init), constant: b.map(Double.init))
        let r = closeEnough(dx, refDx, rtol: 1e-5, atol: 5e-5)
        #expect(r.ok, "\(r.worst)")
    }

    @Test("updateRunningStatistics matches, momentum 0.1 and nil", arguments: [Float(0.1), nil])
    func runningStatisticsMatch(momentum: Float?) {
        let shape = BatchNormShape(n: 9, c: 5)
        var rm = [Float](repeating: 0, count: 5), rv = [Float](repeating: 1, count: 5)
        var refMean = [Double](repeating: 0, count: 5), refVar = [Double](repeating: 1, count: 5)
        var tracked: Int64 = 0, refTracked = 0
        var rng = TestRandom(13)
        for _ in 0..<4 {
            let x = rng.batch(n: shape.n, c: shape.c)
            let m = moments(x, shape)
            BatchNormKernel.updateRunningStatistics(runningMean: &rm, runningVar: &rv, moments: m,
                                                    momentum: momentum, numBatchesTracked: &tracked)
            BatchNormReference.updateRunningStatistics(runningMean: &refMean, runningVar: &refVar,
                moments: BatchNormReference.moments(x, n: shape.n, c: shape.c), momentum: momentum.map(Double.init),
                numBatchesTracked: &refTracked)
        }
        #expect(tracked == 4 && refTracked == 4)
        #expect(closeEnough(rm, refMean, rtol: 1e-5, atol: 1e-6).ok)
        #expect(closeEnough(rv, refVar, rtol: 1e-5, atol: 1e-6).ok)
    }
}

extension BatchNormKernelTests {
    /// Outputs of 8 MB and more are written with streaming stores, row by row
    /// (run by run) from each one's first 32-byte boundary: odd row and run
    /// lengths put every alignment at the row starts.
    @Test("normalizeAffine and backwardInput with streaming stores (≥ 8 MB outputs) match",
          arguments: [BatchNormShape(n: 1025, c: 2049), BatchNormShape(n: 3, c: 5, l: 140_003)])
    func streamingMatches(shape: BatchNormShape) {
        var rng = TestRandom(97)
        let x = rng.normals(shape.elementCount), dy = rng.normals(shape.elementCount)
        let c = shape.c
        let shift = (0..<c).map { _ in Float(rng.normal()) }, scale = (0..<c).map { _ in Float(0.5 + rng.unit()) }
        let bias = (0..<c).map { _ in Float(rng.normal()) }
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                BatchNormKernel.normalizeAffine(xp.baseAddress!, shape: shape, shift: shift, scale: scale, bias: bias, output: yp.baseAddress!)
            }
        }
        let ref = BatchNormReference.normalizeAffine(x, n: shape.n, c: c, l: shape.l, shift: shift.map(Double.init),
                                                     scale: scale.map(Double.init), bias: bias.map(Double.init))
        let r = closeEnough(y, ref, rtol: 1e-6, atol: 2e-5)
        #expect(r.ok, "y \(r.worst)")
        var dx = [Float](repeating: .nan, count: x.count)
        BatchNormKernel.backwardInput(gradOutput: dy, input: x, shape: shape, shift: shift,
                                      gradScale: scale, inputScale: bias, constant: shift, gradInput: &dx)
        let refDx = BatchNormReference.backwardInput(gradOutput: dy, input: x, n: shape.n, c: c, l: shape.l,
            shift: shift.map(Double.init), gradScale: scale.map(Double.init), inputScale: bias.map(Double.init),
            constant: shift.map(Double.init))
        let d = closeEnough(dx, refDx, rtol: 1e-5, atol: 5e-5)
        #expect(d.ok, "dx \(d.worst)")
    }
}
