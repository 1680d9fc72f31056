import Testing
import BatchNormKernels
import BatchNormReference

// The fused BatchNorm → ReLU kernels against their Double twins and against
// the unfused kernels followed by a ReLU, on one thread and on two threads
// with streaming stores (`threadedSettings`).
//
// Tolerances: against the twin, as normalizeAffine's (rtol 1e-6, atol 2e-5:
// one Float32 fused multiply-add per element on inputs of magnitude ≲ 10).
// Against the unfused kernel + ReLU: exact, since the fused pass computes
// the same Float32 value and the clamp itself rounds nothing.

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
}
