import Testing
import BatchNormReference
@testable import BatchNormKit

// Hard numerics: finite Float32 inputs whose squares overflow Float32
// (|x| ≳ 1.8e19). Normalization is scale-invariant, so the right output is
// the same x̂ of O(1) as for any other scale: the Double reference (two-pass,
// Double squares) is the oracle. PyTorch 2.13's float32 CPU kernels return
// y = 0 and running_var = inf (BatchNorm) or NaN (GroupNorm) here; its
// float64 run and the definition give x̂, which is what the layers must give.
// Tolerance: outputs O(1) after Float32 roundings of x and of the constants,
// atol 1e-4 as the other hard-numerics tests.

@Suite("Hard numerics: inputs around ±1e19…1e30 (squares overflow Float32)")
struct LargeMagnitudeTests {
    /// `(N, C, L)` values of magnitude `scale`, feature f spread by (1 + f mod 3).
    func batch(n: Int, c: Int, l: Int = 1, scale: Double, seed: UInt64) -> [Float] {
        var rng = ReferenceRandom(seed: seed)
        return (0..<(n * c * l)).map { i in Float(scale * (1 + Double((i / l) % c % 3)) * rng.normal()) }
    }

    @Test("BatchNorm1d and BatchNorm2d forward: y is x̂, running_var finite where representable",
          arguments: [1e19, 1e25, 1e30])
    func batchNorm(scale: Double) throws {
        for shape in [[64, 5], [4, 3, 2, 7]] {
            let n = shape[0], c = shape[1], l = shape.dropFirst(2).reduce(1, *)
            let x = batch(n: n, c: c, l: l, scale: scale, seed: 17)
            let bn: _BatchNorm = shape.count == 2 ? try BatchNorm1d(numFeatures: c) : try BatchNorm2d(numFeatures: c)
            let y = try bn.forward(.of(shape, x))
            let want = BatchNormReference.forwardTrain(x, n: n, c: c, l: l, gamma: .init(repeating: 1, count: c),
                                                       beta: .init(repeating: 0, count: c), eps: 1e-5)
            let r = expectClose(y.scalars, want, rtol: 0, atol: 1e-4, "y \(shape) at \(scale)")
            #expect(r.ok, "\(r.message)")
            // running_var = 0.9·1 + 0.1·unbiased variance, in Float32 when it fits
            let m = BatchNormReference.moments(x, n: n, c: c, l: l)
            let expected = m.unbiasedVariance.map { 0.9 + 0.1 * $0 }
            for f in 0..<c where expected[f] < Double(Float.greatestFiniteMagnitude) {
                let got = Double(bn.runningVar!.scalars[f])
                #expect(got.isFinite && abs(got - expected[f]) <= 1e-5 * expected[f], "running_var[\(f)] \(got) vs \(expected[f])")
            }
            let means = BatchNormReference.moments(x, n: n, c: c, l: l).mean
            // a mean of ±scale values sums N Float32 terms: its error is relative to the
            // values' scale (≈ 64 ulps of 3·scale per block, over N), not to the mean
            let rm = expectClose(bn.runningMean!.scalars, means.map { 0.1 * $0 }, rtol: 1e-5, atol: 1e-6 * scale, "running_mean")
            #expect(rm.ok, "\(rm.message)")
        }
    }

    /// Only up to ~1e19: beyond it dx's per-feature constant −γ·s³·Σdy·(x − μ)/m
    /// (s = 1/σ) falls below Float32's range, so the x̂ term of dx is lost
    /// (see Sources/BatchNormKernels/README.md, "Range").
    @Test("BatchNorm1d backward: dx·scale, dγ and dβ as the reference's", arguments: [1e18, 1e19])
    func batchNormBackward(scale: Double) throws {
        let n = 64, c = 5
        let x = batch(n: n, c: c, scale: scale, seed: 31)
        var rng = ReferenceRandom(seed: 37)
        let dy = rng.normals(n * c)
        let bn = try BatchNorm1d(numFeatures: c)
        _ = try bn.forward(.of([n, c], x))
        let dx = try bn.backward(.of([n, c], dy))
        let want = BatchNormReference.backwardTrain(gradOutput: dy, input: x, n: n, c: c,
                                                    gamma: .init(repeating: 1, count: c), eps: 1e-5)
        // dx is of order 1/σ: compared after scaling by σ's order
        let r = expectClose(dx.scalars.map { Double($0) * scale }, want.input.map { $0 * scale }, rtol: 0, atol: 1e-3, "dx·scale")
        #expect(r.ok, "\(r.message)")
        let g = expectClose(bn.weight!.grad.scalars, want.gamma, rtol: 1e-4, atol: 1e-3, "dγ")
        #expect(g.ok, "\(g.message)")
        let b = expectClose(bn.bias!.grad.scalars, want.beta, rtol: 1e-4, atol: 1e-3, "dβ")
        #expect(b.ok, "\(b.message)")
    }

    @Test("LayerNorm and GroupNorm forward: y is x̂", arguments: [1e19, 1e25, 1e30])
    func groupNorm(scale: Double) throws {
        let x = batch(n: 6, c: 8, l: 5, scale: scale, seed: 23)
        let gn = try GroupNorm(numGroups: 2, numChannels: 8)
        let y = try gn.forward(.of([6, 8, 5], x))
        let want = GroupNormReference.forward(x, n: 6, c: 8, groups: 2, l: 5, gamma: nil, beta: nil, eps: 1e-5)
        let r = expectClose(y.scalars, want, rtol: 0, atol: 1e-4, "GroupNorm y at \(scale)")
        #expect(r.ok, "\(r.message)")
        let rows = batch(n: 5, c: 40, scale: scale, seed: 29)
        let ln = try LayerNorm(normalizedShape: [40])
        let z = try ln.forward(.of([5, 40], rows))
        let wantZ = GroupNormReference.forward(rows, n: 5, c: 40, groups: 1, l: 1, gamma: nil, beta: nil, eps: 1e-5)
        let s = expectClose(z.scalars, wantZ, rtol: 0, atol: 1e-4, "LayerNorm y at \(scale)")
        #expect(s.ok, "\(s.message)")
    }
}
