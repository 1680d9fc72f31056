#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Deterministic data for tests and benchmarks (test support, not a product): a 64-bit LCG (Knuth's MMIX
/// constants), so every run, on every machine, sees the same batches.
public struct ReferenceRandom {
    private var state: UInt64

    /// A stream fixed by `seed`.
    public init(seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }

    /// The next 64 bits.
    public mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u = max(unit(), 1e-300), v = unit()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }

    /// `(N, C, L)` values shaped like a network's pre-activations: feature f
    /// has mean (f mod 7) − 3 and standard deviation 0.5 + (f mod 3).
    public mutating func batch(n: Int, c: Int, l: Int = 1) -> [Float] {
        var x = [Float](repeating: 0, count: n * c * l)
        for s in 0..<n { for f in 0..<c { for p in 0..<l {
            x[(s * c + f) * l + p] = Float(Double(f % 7 - 3) + (0.5 + Double(f % 3)) * normal())
        } } }
        return x
    }

    /// `count` standard-normal values.
    public mutating func normals(_ count: Int, scale: Double = 1) -> [Float] {
        (0..<count).map { _ in Float(scale * normal()) }
    }
}

/// Elementwise comparison against an oracle: passes when every
/// |got − want| ≤ atol + rtol·|want|; `worst` names the first-worst element.
public func compareToReference<A: Collection, B: Collection>(
    _ got: A, _ want: B, rtol: Double, atol: Double
) -> (ok: Bool, worst: String) where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    guard got.count == want.count else { return (false, "count \(got.count) vs \(want.count)") }
    var worst = 0.0, at = -1, gotWorst = 0.0, wantWorst = 0.0
    for (i, (g, w)) in zip(got, want).enumerated() {
        let gd = Double(g), wd = Double(w)
        let excess = gd.isFinite ? abs(gd - wd) - (atol + rtol * abs(wd)) : .infinity
        if excess > worst { worst = excess; at = i; gotWorst = gd; wantWorst = wd }
    }
    return (at < 0, at < 0 ? "ok" : "index \(at): got \(gotWorst), want \(wantWorst)")
}
