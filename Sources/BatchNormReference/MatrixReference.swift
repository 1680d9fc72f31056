// MARK: - The naive twin of MatrixKernel

/// Double loops beside BatchNormKernels' `MatrixKernel`: the oracle of its
/// tests and the baseline of its bench case (`kernel.gemm.multiply`).
public enum MatrixReference {
    /// op(A) `(m, k)` · op(B) `(k, n)` (+ c when given) → `(m, n)` row-major,
    /// with the kernel's layout rules: op(a)[i, p] = `a[i·lda + p]` (or
    /// `a[p·lda + i]` when `transposeA`), op(b)[p, j] = `b[p·ldb + j]` (or
    /// `b[j·ldb + p]` when `transposeB`); `c` `(m, n)` dense.
    public static func multiply<T: BinaryFloatingPoint>(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: [T], lda: Int, b: [T], ldb: Int, adding c: [T]? = nil
    ) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = c.map { Double($0[i * n + j]) } ?? 0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    acc += Double(x) * Double(y)
                }
                out[i * n + j] = acc
            }
        }
        return out
    }

    /// Σ_p |op(A)[i, p]|·|op(B)[p, j]| (+ |c|): the scale of each element's
    /// rounding error, for tolerances (a Float32 chain of k multiply-adds is
    /// within k·2⁻²⁴/(1 − k·2⁻²⁴) of it, Higham's γ_k).
    public static func absoluteScale<T: BinaryFloatingPoint>(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        a: [T], lda: Int, b: [T], ldb: Int, adding c: [T]? = nil
    ) -> [Double] {
        multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                 a: a.map { Swift.abs($0) }, lda: lda, b: b.map { Swift.abs($0) }, ldb: ldb,
                 adding: c.map { $0.map { Swift.abs($0) } })
    }
}
