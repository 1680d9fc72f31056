import Testing
import BatchNormKernels
import KernelSupport
import MatrixKernels
import BatchNormReference

// MatrixKernel.multiply against its Double twin on every transpose pair,
// shapes that end tiles, panels and blocks on partial ones (8-row, 32-column
// tiles; 128-row, 256-sum, 512-column blocks), leading dimensions wider than
// the matrices, both β, and the threaded split of columns and of rows.
//
// Tolerance: each element is a Float32 chain of k multiply-adds (plus c), so
// |error| ≤ γ_k · Σ_p |a||b| with γ_k = k·u/(1 − k·u), u = 2⁻²⁴ (Higham,
// "Accuracy and Stability of Numerical Algorithms", §3.1), plus the rounding
// of the inputs' Double products (none: Float·Float is exact in Double).
// Without FMA (debug builds) each step rounds twice: 2k·u is used.

@Suite("MatrixKernel: C = op(A)·op(B) (+ C) against the Double twin", .serialized)
struct MatrixKernelTests {
    struct Case: CustomStringConvertible, Sendable {
        var m: Int, n: Int, k: Int
        var description: String { "(\(m), \(n), \(k))" }
    }

    static let shapes: [Case] = [
        .init(m: 1, n: 1, k: 1), .init(m: 7, n: 31, k: 3), .init(m: 8, n: 32, k: 256), .init(m: 9, n: 33, k: 257),
        .init(m: 130, n: 70, k: 300), .init(m: 17, n: 600, k: 40), .init(m: 300, n: 5, k: 20),
    ]

    /// Runs one product on `settings` and checks it; returns the kernel's output.
    @discardableResult
    static func check(_ s: Case, transposeA: Bool, transposeB: Bool, accumulate: Bool,
                      settings: _KernelSettings = _KernelSettings(threadCount: 1, parallelThreshold: 1, streamingThreshold: 1),
                      seed: UInt64 = 1) -> [Float] {
        var rng = TestRandom(seed + UInt64(s.m * 1_000_003 + s.n * 1009 + s.k))
        // stored shapes, with 3 spare values per row (leading dimension > the matrix's)
        let (aRows, aColumns) = transposeA ? (s.k, s.m) : (s.m, s.k)
        let (bRows, bColumns) = transposeB ? (s.n, s.k) : (s.k, s.n)
        let lda = aColumns + 3, ldb = bColumns + 3, ldc = s.n + 3
        let a = rng.normals(aRows * lda), b = rng.normals(bRows * ldb)
        let c0 = rng.normals(s.m * ldc)
        var c = accumulate ? c0 : [Float](repeating: .nan, count: s.m * ldc)   // β = 0 must overwrite NaN
        BatchNormKernel._withSettings(settings) {
            MatrixKernel.multiply(transposeA: transposeA, transposeB: transposeB, m: s.m, n: s.n, k: s.k,
                                  a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: &c, ldc: ldc)
        }
        let dense = accumulate ? (0..<s.m).flatMap { i in c0[(i * ldc)..<(i * ldc + s.n)] } : nil
        let want = MatrixReference.multiply(transposeA: transposeA, transposeB: transposeB, m: s.m, n: s.n, k: s.k,
                                            a: a, lda: lda, b: b, ldb: ldb, adding: dense)
        let scale = MatrixReference.absoluteScale(transposeA: transposeA, transposeB: transposeB, m: s.m, n: s.n, k: s.k,
                                                  a: a, lda: lda, b: b, ldb: ldb, adding: dense)
        let u = 0x1p-24 * 2.0, steps = Double(s.k + 1)
        let gamma = steps * u / (1 - steps * u)
        var worst = 0.0, ok = true
        for i in 0..<s.m {
            for j in 0..<s.n {
                let got = Double(c[i * ldc + j]), err = Swift.abs(got - want[i * s.n + j])
                let bound = gamma * scale[i * s.n + j] + 1e-30
                if !(err <= bound) { ok = false }
                worst = max(worst, err / bound)
            }
            // the spare values past n are never written
            for j in s.n..<ldc {
                let before = accumulate ? c0[i * ldc + j] : Float.nan
                if !(c[i * ldc + j].bitPattern == before.bitPattern) { ok = false }
            }
        }
        #expect(ok, "\(s) tA \(transposeA) tB \(transposeB) β \(accumulate ? 1 : 0): worst error \(worst) of its bound")
        return c
    }

    @Test("every transpose pair and β, on shapes ending tiles and blocks part-way", arguments: shapes)
    func againstTwin(_ s: Case) {
        for tA in [false, true] {
            for tB in [false, true] {
                for accumulate in [false, true] { Self.check(s, transposeA: tA, transposeB: tB, accumulate: accumulate) }
            }
        }
    }

    @Test("two threads: columns split (wide C) and rows split (narrow C), the same values as one thread")
    func threaded() {
        let two = _KernelSettings(threadCount: 2, parallelThreshold: 1, streamingThreshold: 1)
        // ≥ 2²¹ multiply-adds: wide C splits its columns, C with 10 columns its rows
        for s in [Case(m: 64, n: 256, k: 130), Case(m: 260, n: 10, k: 1000)] {
            for (tA, tB) in [(false, true), (true, false), (false, false)] {
                let split = Self.check(s, transposeA: tA, transposeB: tB, accumulate: true, settings: two)
                let one = Self.check(s, transposeA: tA, transposeB: tB, accumulate: true)
                // each element is the same chain on either thread: bit-identical
                #expect(split.map(\.bitPattern) == one.map(\.bitPattern), "\(s) tA \(tA) tB \(tB)")
            }
        }
    }

    @Test("k = 0: β = 0 zeroes C, β = 1 leaves it; m = 0 or n = 0 writes nothing")
    func empty() {
        var c: [Float] = [1, 2, 3, 4]
        let a: [Float] = [1], b: [Float] = [1]
        MatrixKernel.multiply(transposeA: false, transposeB: false, m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2,
                              accumulate: true, c: &c, ldc: 2)
        #expect(c == [1, 2, 3, 4])
        MatrixKernel.multiply(transposeA: false, transposeB: false, m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2,
                              accumulate: false, c: &c, ldc: 2)
        #expect(c == [0, 0, 0, 0])
        var d: [Float] = [5]
        MatrixKernel.multiply(transposeA: false, transposeB: false, m: 0, n: 1, k: 1, a: a, lda: 1, b: b, ldb: 1,
                              accumulate: false, c: &d, ldc: 1)
        #expect(d == [5])
    }
}
