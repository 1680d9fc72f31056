import Testing
import BatchNormKernels
import BatchNormReference

// The fused BatchNorm → ReLU kernels against their Double twins and against
// the unfused kernels followed by a ReLU, on one thread and on two threads
// with streaming stores (`threadedSettings`).
//
// Tolerances: backward sums as backwardReduce's (rtol 1e-5, atol 1e-6·√(N·L):
// Float32 block sums of N·L terms of O(1)), dx as backwardInput's (rtol 1e-5,
// atol 5e-5: two Float32 multiply-adds per element). Forward: as normalizeAffine's (rtol 1e-6, atol 2e-5:
// one Float32 fused multiply-add per element on inputs of magnitude ≲ 10).
// Against the unfused kernel + ReLU: exact, since the fused pass computes
// the same Float32 value and the clamp itself rounds nothing (the backward
// sums: within rounding, see `backward`).

/// The unfused pair: normalizeAffine, then a ReLU pass.
private func unfusedForward(_ x: [Float], shape: BatchNormShape, shift: [Float], scale: [Float], bias: [Float]) -> [Float] {
    var y = [Float](repeating: .nan, count: x.count)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            BatchNormKernel.normalizeAffine(xp.baseAddress!, shape: shape, shift: shift, scale: scale, bias: bias,
                                            output: yp.baseAddress!)
        }
    }
    return y.map { $0 < 0 ? 0 : $0 }
}

@Suite("Fused BatchNorm → ReLU kernels", .serialized)
struct FusedReLUKernelTests {
    @Test("normalizeAffineReLU matches its twin and normalizeAffine + ReLU",
          arguments: threadedShapes, [false, true])
    func forward(shape: BatchNormShape, threaded: Bool) {
        var rng = TestRandom(313 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), c = shape.c
        let shift = (0..<c).map { _ in Float(rng.normal()) }, scale = (0..<c).map { _ in Float(0.5 + rng.unit()) }
        let bias = (0..<c).map { _ in Float(rng.normal()) }
        var y = [Float](repeating: .nan, count: x.count)
        let run = {
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    BatchNormKernel.normalizeAffineReLU(xp.baseAddress!, shape: shape, shift: shift, scale: scale,
                                                        bias: bias, output: yp.baseAddress!)
                }
            }
        }
        if threaded { BatchNormKernel._withSettings(threadedSettings, run) } else { run() }
        let want = BatchNormReference.normalizeAffineReLU(x, n: shape.n, c: c, l: shape.l, shift: shift.map(Double.init),
                                                          scale: scale.map(Double.init), bias: bias.map(Double.init))
        let yr = closeEnough(y, want, rtol: 1e-6, atol: 2e-5)
        #expect(yr.ok, "y \(yr.worst)")
        // the clamp happened: no negative output, and some zeros (bias ~ N(0, 1))
        #expect(!y.contains { $0 < 0 })
        if x.count >= 64 { #expect(y.contains(0)) }
        #expect(y == unfusedForward(x, shape: shape, shift: shift, scale: scale, bias: bias))
    }

    @Test("normalizeAffineReLU: NaN stays NaN, negatives become +0")
    func specialValues() {
        let shape = BatchNormShape(n: 2, c: 9)   // one vector and one scalar tail column per row
        var x = [Float](repeating: -1, count: 18)
        x[0] = .nan; x[8] = .nan; x[1] = 2; x[17] = 3
        let ones = [Float](repeating: 1, count: 9), zeros = [Float](repeating: 0, count: 9)
        var y = [Float](repeating: 7, count: 18)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                BatchNormKernel.normalizeAffineReLU(xp.baseAddress!, shape: shape, shift: zeros, scale: ones, bias: zeros,
                                                    output: yp.baseAddress!)
            }
        }
        #expect(y[0].isNaN && y[8].isNaN)
        #expect(y[1] == 2 && y[17] == 3)
        #expect(y[2] == 0 && y[2].sign == .plus && y[16] == 0)
    }

    @Test("backwardReduceReLU and backwardInputReLU match their twins and the unfused kernels on dy·[y > 0]",
          arguments: threadedShapes, [false, true])
    func backward(shape: BatchNormShape, threaded: Bool) {
        var rng = TestRandom(419 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), dy = rng.batch(n: shape.n, c: shape.c, l: shape.l)
        let c = shape.c
        let shift = (0..<c).map { _ in Float(rng.normal()) }, scale = (0..<c).map { _ in Float(0.5 + rng.unit()) }
        let bias = (0..<c).map { _ in Float(rng.normal()) }
        let g = (0..<c).map { _ in Float(rng.unit()) }, k = (0..<c).map { _ in Float(rng.normal()) }
        let b = (0..<c).map { _ in Float(rng.normal()) }
        // y: the fused forward's output, with y = 0 exactly where the ReLU clamped;
        // the fused backward does not read it but recomputes its sign from x
        var y = [Float](repeating: .nan, count: x.count)
        var s1 = [Double](repeating: .nan, count: c), s2 = s1, u1 = s1, u2 = s1
        var scratch = [Float](repeating: 0, count: 2 * c)
        var dx = [Float](repeating: .nan, count: x.count), unfusedDx = dx
        let run = {
            BatchNormKernel.normalizeAffineReLU(x, shape: shape, shift: shift, scale: scale, bias: bias, output: &y)
            BatchNormKernel.backwardReduceReLU(gradOutput: dy, input: x, shape: shape, shift: shift, scale: scale,
                                               bias: bias, sumGrad: &s1, sumGradShifted: &s2, scratch: &scratch)
            BatchNormKernel.backwardInputReLU(gradOutput: dy, input: x, shape: shape, shift: shift, scale: scale,
                                              bias: bias, gradScale: g, inputScale: k, constant: b, gradInput: &dx)
            // the unfused pair on the masked gradient, under the same settings
            let dyMasked = zip(dy, y).map { $1 > 0 ? $0 : 0 }
            BatchNormKernel.backwardReduce(gradOutput: dyMasked, input: x, shape: shape, shift: shift,
                                           sumGrad: &u1, sumGradShifted: &u2, scratch: &scratch)
            BatchNormKernel.backwardInput(gradOutput: dyMasked, input: x, shape: shape, shift: shift,
                                          gradScale: g, inputScale: k, constant: b, gradInput: &unfusedDx)
        }
        if threaded { BatchNormKernel._withSettings(threadedSettings, run) } else { run() }
        #expect(y.contains(0) || x.count < 64, "no element was clamped: the mask is untested")
        let d = shift.map(Double.init), sc = scale.map(Double.init), bi = bias.map(Double.init)
        // the twins mask by the Double pre-activation: the same mask unless a
        // value lies within Float32 rounding of 0, which this data must not hold
        let pre = BatchNormReference.normalizeAffine(x, n: shape.n, c: c, l: shape.l, shift: d, scale: sc, bias: bi)
        #expect(zip(pre, y).allSatisfy { ($0 > 0) == ($1 > 0) }, "the Double and Float32 masks differ: pick other data")
        let sums = BatchNormReference.backwardReduceReLU(gradOutput: dy, input: x, n: shape.n, c: c, l: shape.l,
                                                         shift: d, scale: sc, bias: bi)
        let atol = 1e-6 * Double(shape.valuesPerFeature).squareRoot()
        #expect(closeEnough(s1, sums.sumGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(s2, sums.sumGradShifted, rtol: 1e-5, atol: atol).ok)
        let wantDx = BatchNormReference.backwardInputReLU(gradOutput: dy, input: x, n: shape.n, c: c, l: shape.l,
                                                          shift: d, scale: sc, bias: bi, gradScale: g.map(Double.init),
                                                          inputScale: k.map(Double.init), constant: b.map(Double.init))
        let dr = closeEnough(dx, wantDx, rtol: 1e-5, atol: 5e-5)
        #expect(dr.ok, "dx \(dr.worst)")
        // masking where dy is read, by the recomputed sign, is the same
        // arithmetic as masking by the forward's y first: dx to the bit (every
        // element, so the mask is y's everywhere); the sums within rounding, as
        // the ReLU reduction may read two rows per pass where the plain one
        // reads one (`leastRowGroup`: the same additions in another order)
        #expect(closeEnough(s1, u1, rtol: 1e-5, atol: atol).ok && closeEnough(s2, u2, rtol: 1e-5, atol: atol).ok)
        #expect(dx == unfusedDx)
        // and the mask matters: the unmasked sums differ wherever a value was clamped
        if x.count >= 64 {
            var plain1 = s1, plain2 = s2
            BatchNormKernel.backwardReduce(gradOutput: dy, input: x, shape: shape, shift: shift,
                                           sumGrad: &plain1, sumGradShifted: &plain2, scratch: &scratch)
            #expect(plain1 != s1)
        }
    }

    @Test("the ReLU mask: a pre-activation ≤ 0 or NaN stops the gradient, > 0 passes it")
    func maskValues() {
        let shape = BatchNormShape(n: 1, c: 9)   // one vector and one scalar tail column
        // x = 0, shift = 0, scale = 1: the pre-activation is the bias
        let p: [Float] = [0, -0.0, 1, .nan, 2, 0, 3, 1e-30, 0]
        let dy: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        let zeros = [Float](repeating: 0, count: 9), ones = [Float](repeating: 1, count: 9)
        var s1 = [Double](repeating: .nan, count: 9), s2 = s1, scratch = [Float](repeating: 0, count: 18)
        BatchNormKernel.backwardReduceReLU(gradOutput: dy, input: zeros, shape: shape, shift: zeros, scale: ones, bias: p,
                                           sumGrad: &s1, sumGradShifted: &s2, scratch: &scratch)
        #expect(s1 == [0, 0, 3, 0, 5, 0, 7, 8, 0])
        var dx = [Float](repeating: .nan, count: 9)
        BatchNormKernel.backwardInputReLU(gradOutput: dy, input: zeros, shape: shape, shift: zeros, scale: ones, bias: p,
                                          gradScale: ones, inputScale: zeros, constant: zeros, gradInput: &dx)
        #expect(dx == [0, 0, 3, 0, 5, 0, 7, 8, 0])
    }

    @Test("the dx pass keeps dy exactly on the positive lanes, for every kind of Float pre-activation")
    func maskBitPatterns() {
        // every class of pre-activation: ±0, ±subnormal, ±normal, ±∞, NaNs of either sign and payload
        let patterns: [UInt32] = [0x0000_0000, 0x8000_0000, 0x0000_0001, 0x8000_0001, 0x007F_FFFF, 0x0080_0000,
                                  0x3F80_0000, 0xBF80_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F80_0000, 0xFF80_0000,
                                  0x7F80_0001, 0x7FC0_0000, 0x7FFF_FFFF, 0xFFC0_0000, 0xFFFF_FFFF, 0x8000_0002]
        let p = patterns.map { Float(bitPattern: $0) }
        let n = p.count
        // dy = ∞ everywhere: a masked lane must give 0, not ∞·0 = NaN
        let dy = [Float](repeating: .infinity, count: n)
        let zeros = [Float](repeating: 0, count: n), ones = [Float](repeating: 1, count: n)
        var dx = [Float](repeating: .nan, count: n)
        // x = 0, shift = 0, scale = 1: the pre-activation 0·1 + p is p (−0 becomes +0: masked either way)
        BatchNormKernel.backwardInputReLU(gradOutput: dy, input: zeros, shape: BatchNormShape(n: 1, c: n), shift: zeros,
                                          scale: ones, bias: p, gradScale: ones, inputScale: zeros, constant: zeros,
                                          gradInput: &dx)
        for i in 0..<n {
            let want: Float = p[i] > 0 ? .infinity : 0
            #expect(dx[i] == want, "pre-activation bits \(String(patterns[i], radix: 16)): dx \(dx[i]), want \(want)")
        }
    }
}
