import BatchNormKernels

/// Deterministic test data: a 64-bit LCG, so every run sees the same batches.
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u = max(unit(), 1e-300), v = unit()
        return (-2 * u.log()).squareRoot() * (2 * Double.pi * v).cosine()
    }
    /// `count` values with feature-dependent mean and scale, as a network's
    /// pre-activations look: feature f has mean (f % 7 − 3) and std 0.5 + f % 3.
    mutating func batch(n: Int, c: Int, l: Int = 1) -> [Float] {
        var x = [Float](repeating: 0, count: n * c * l)
        for s in 0..<n { for f in 0..<c { for p in 0..<l {
            x[(s * c + f) * l + p] = Float(Double(f % 7 - 3) + (0.5 + Double(f % 3)) * normal())
        } } }
        return x
    }
}

#if canImport(Glibc)
import Glibc
#endif
extension Double {
    func log() -> Double { Glibc.log(self) }
    func cosine() -> Double { Glibc.cos(self) }
}

/// |got − want| ≤ atol + rtol·|want| for every element; returns the worst
/// index and excess so a failure says where.
func closeEnough<A: Collection, B: Collection>(_ got: A, _ want: B, rtol: Double, atol: Double) -> (ok: Bool, worst: String)
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    guard got.count == want.count else { return (false, "count \(got.count) vs \(want.count)") }
    var worst = 0.0, at = -1, gw = 0.0, ww = 0.0
    for (i, (g, w)) in zip(got, want).enumerated() {
        let excess = abs(Double(g) - Double(w)) - (atol + rtol * abs(Double(w)))
        if excess > worst || !Double(g).isFinite { worst = Double(g).isFinite ? excess : .infinity; at = i; gw = Double(g); ww = Double(w) }
    }
    return (at < 0, at < 0 ? "ok" : "index \(at): got \(gw), want \(ww)")
}

/// Shapes every kernel is tried on: odd and tiny feature counts exercise the
/// vector tails, N = 2 is the smallest trainable batch, N = 130 spans blocks.
let kernelShapes: [BatchNormShape] = [
    .init(n: 2, c: 1), .init(n: 2, c: 3), .init(n: 5, c: 17), .init(n: 130, c: 8),
    .init(n: 65, c: 1000), .init(n: 3, c: 64), .init(n: 2, c: 3, l: 5),
    .init(n: 4, c: 17, l: 9), .init(n: 3, c: 2, l: 600),
]
