import Testing
import BatchNormKernels
import KernelSupport
import BatchNormReference

// The fused GroupNorm / LayerNorm → ReLU kernels against their Double twins
// and against the unfused GroupNorm kernels on the clamped output / masked
// gradient, on one thread and on two threads with streaming stores
// (`threadedSettings`; both with thresholds 1, so every path is the split
// or streamed one it would be at scale).
//
// Tolerances, against the twins: those of GroupNormKernelTests, for the same
// reason — Float32 arithmetic with Double row totals against a Double
// oracle. y within rtol 1e-6, atol 2e-5 (one Float32 multiply-add per
// element on values ≲ 10; the clamp rounds nothing), dx within rtol 1e-5,
// atol 5e-5 (two multiply-adds with row constants from Double sums), dγ, dβ
// within 1e-6·√(N·L) + 1e-6 (Float32 partial sums of blocks of 64 terms).
// Against the unfused kernels: exact (==), since the fused passes compute
// the same Float32 expressions on the same values (a masked dy is +0, as in
// the masked copy) in the same order.

private struct Run {
    var y, dx, dGamma, dBeta, shift: [Float]
    var meanOffset, invStd: [Double]
}

/// forward (or forwardReLU), then backward (or backwardReLU) of `dy` with `mask` as y.
private func run(_ x: [Float], dy: [Float], shape: GroupNormShape, gamma: [Float]?, beta: [Float]?,
                 fused: Bool, mask: [Float]? = nil) -> Run {
    let nan = [Float](repeating: .nan, count: x.count), rows = [Double](repeating: .nan, count: shape.rows)
    var r = Run(y: nan, dx: nan, dGamma: [Float](repeating: 0, count: shape.c), dBeta: [Float](repeating: 0, count: shape.c),
                shift: [Float](repeating: .nan, count: shape.rows), meanOffset: rows, invStd: rows)
    var totals = [Double](repeating: .nan, count: 2 * shape.c), block = [Float](repeating: .nan, count: 2 * shape.c)
    withOptional(gamma) { gamma in withOptional(beta) { beta in
        if fused {
            GroupNormKernel.forwardReLU(x, shape: shape, gamma: gamma, beta: beta, eps: 1e-5, output: &r.y,
                                        shift: &r.shift, meanOffset: &r.meanOffset, invStd: &r.invStd)
            let y = mask ?? r.y
            GroupNormKernel.backwardReLU(gradOutput: dy, output: y, input: x, shape: shape, gamma: gamma,
                                         shift: r.shift, meanOffset: r.meanOffset, invStd: r.invStd, gradInput: &r.dx,
                                         gammaGrad: &r.dGamma, betaGrad: &r.dBeta, totals: &totals, blockSums: &block)
        } else {
            GroupNormKernel.forward(x, shape: shape, gamma: gamma, beta: beta, eps: 1e-5, output: &r.y,
                                    shift: &r.shift, meanOffset: &r.meanOffset, invStd: &r.invStd)
            GroupNormKernel.backward(gradOutput: dy, input: x, shape: shape, gamma: gamma,
                                     shift: r.shift, meanOffset: r.meanOffset, invStd: r.invStd, gradInput: &r.dx,
                                     gammaGrad: &r.dGamma, betaGrad: &r.dBeta, totals: &totals, blockSums: &block)
        }
    } }
    return r
}

/// `body` with the array's base address, or nil (a layer without γ or β).
private func withOptional(_ a: [Float]?, _ body: (UnsafePointer<Float>?) -> Void) {
    guard let a else { return body(nil) }
    a.withUnsafeBufferPointer { body($0.baseAddress) }
}

private let oneThread = _KernelSettings(threadCount: 1, parallelThreshold: 1, streamingThreshold: 1)

@Suite("Fused GroupNorm / LayerNorm → ReLU kernels", .serialized)
struct FusedGroupNormReLUKernelTests {
    @Test("forwardReLU and backwardReLU match their twins and the unfused kernels on max(0, y) and dy·[y > 0]",
          arguments: groupNormShapes + [GroupNormShape(n: 150, c: 24, groups: 1), GroupNormShape(n: 7, c: 6, groups: 3, l: 33)],
          [false, true])
    func matches(shape: GroupNormShape, threaded: Bool) {
        var rng = TestRandom(907 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c, l: shape.l), dy = rng.normals(shape.elementCount)
        let gamma = (0..<shape.c).map { _ in Float(0.5 + rng.unit()) }, beta = (0..<shape.c).map { _ in Float(rng.normal()) }
        for affine in [true, false] {
            let g = affine ? gamma : nil, b = affine ? beta : nil
            let settings = threaded ? threadedSettings : oneThread
            var fused: Run!, unfused: Run!
            BatchNormKernel._withSettings(settings) {
                fused = run(x, dy: dy, shape: shape, gamma: g, beta: b, fused: true)
                // the unfused kernels: forward + ReLU, backward of the masked gradient
                let plain = run(x, dy: dy, shape: shape, gamma: g, beta: b, fused: false)
                let masked = zip(dy, fused.y).map { $1 > 0 ? $0 : 0 }
                unfused = run(x, dy: masked, shape: shape, gamma: g, beta: b, fused: false)
                unfused.y = plain.y.map { $0 < 0 ? 0 : $0 }
            }
            #expect(fused.y == unfused.y, "\(shape) affine \(affine)")
            #expect(fused.shift == unfused.shift && fused.meanOffset == unfused.meanOffset && fused.invStd == unfused.invStd)
            #expect(fused.dx == unfused.dx, "dx \(shape) affine \(affine)")
            #expect(fused.dGamma == unfused.dGamma && fused.dBeta == unfused.dBeta, "dγ, dβ \(shape) affine \(affine)")
            #expect(!fused.y.contains { $0 < 0 })
            #expect(fused.y.contains(0) || x.count < 16, "no element was clamped: the mask is untested")
            // the twins
            let gd = g?.map(Double.init), bd = b?.map(Double.init)
            let want = GroupNormReference.forwardReLU(x, n: shape.n, c: shape.c, groups: shape.groups, l: shape.l,
                                                      gamma: gd, beta: bd, eps: 1e-5)
            let yr = closeEnough(fused.y, want, rtol: 1e-6, atol: 2e-5)
            #expect(yr.ok, "y \(yr.worst)")
            let ref = GroupNormReference.backwardReLU(gradOutput: dy, output: fused.y, input: x, n: shape.n, c: shape.c,
                                                      groups: shape.groups, l: shape.l, gamma: gd, eps: 1e-5)
            let dr = closeEnough(fused.dx, ref.gradInput, rtol: 1e-5, atol: 5e-5)
            #expect(dr.ok, "dx \(dr.worst)")
            let atol = 1e-6 * Double(shape.n * shape.l).squareRoot() + 1e-6
            let gr = closeEnough(fused.dGamma, ref.gammaGrad, rtol: 1e-5, atol: atol)
            #expect(gr.ok, "dγ \(gr.worst)")
            let br = closeEnough(fused.dBeta, ref.betaGrad, rtol: 1e-5, atol: atol)
            #expect(br.ok, "dβ \(br.worst)")
        }
    }

    @Test("forwardReLU: NaN stays NaN, negatives become +0 (vector and scalar tail)")
    func specialValues() {
        let shape = GroupNormShape(n: 1, c: 9, groups: 1)   // one vector and one scalar tail value
        let x: [Float] = [.nan, 2, -1, -1, -1, -1, -1, -1, .nan]
        var y = [Float](repeating: 7, count: 9), shift: [Float] = [0]
        var meanOffset = [0.0], invStd = [0.0]
        GroupNormKernel.forwardReLU(x, shape: shape, gamma: nil, beta: nil, eps: 1e-5, output: &y,
                                    shift: &shift, meanOffset: &meanOffset, invStd: &invStd)
        #expect(y.allSatisfy { $0.isNaN }, "a NaN in the row makes its statistics NaN")
        let finite: [Float] = [3, 2, -1, -1, -1, -1, -1, -1, 5]
        GroupNormKernel.forwardReLU(finite, shape: shape, gamma: nil, beta: nil, eps: 1e-5, output: &y,
                                    shift: &shift, meanOffset: &meanOffset, invStd: &invStd)
        #expect(y[0] > 0 && y[1] > 0 && y[8] > 0)
        #expect(y[2...7].allSatisfy { $0 == 0 && $0.sign == .plus })
    }

    @Test("the ReLU mask: y ≤ 0, −0 or NaN stops the gradient, y > 0 passes it (across channels and along runs)",
          arguments: [GroupNormShape(n: 1, c: 9, groups: 1), GroupNormShape(n: 1, c: 1, groups: 1, l: 9)])
    func maskValues(shape: GroupNormShape) {
        let y: [Float] = [0, -0.0, 1, .nan, 2, 0, 3, 1e-30, 0]
        let dy: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9], masked: [Float] = [0, 0, 3, 0, 5, 0, 7, 8, 0]
        var rng = TestRandom(5)
        let x = rng.normals(9)
        let fused = run(x, dy: dy, shape: shape, gamma: nil, beta: nil, fused: true, mask: y)
        let plain = run(x, dy: masked, shape: shape, gamma: nil, beta: nil, fused: false)
        #expect(fused.dx == plain.dx)
        #expect(fused.dBeta == plain.dBeta && fused.dGamma == plain.dGamma)
        #expect(fused.dBeta == (shape.l == 1 ? masked : [masked.reduce(0, +)]))
    }
}
