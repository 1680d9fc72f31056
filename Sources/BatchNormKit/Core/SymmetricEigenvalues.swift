import CBatchNormKitBLAS

/// Eigenvalues of a symmetric `(n, n)` matrix, ascending, through LAPACK's
/// `ssyevd` (OpenBLAS's LAPACKE).
///
/// Exists for the roadmap's Hessian experiments: the spectrum of a small
/// network's loss Hessian is how the seed's "BatchNorm smooths the landscape"
/// claim gets tested. Only the upper triangle of `matrix` is read.
///
/// - matrix: `(n, n)` row-major. Returns `[n]`.
/// - Throws: `shapeMismatch` when `matrix.count != n·n`; `invalidArgument`
///   when LAPACK reports a failure (its `info` code is in the message).
public func symmetricEigenvalues(_ matrix: [Float], n: Int) throws -> [Float] {
    guard n >= 1, matrix.count == n * n else {
        throw BatchNormKitError.shapeMismatch(context: "symmetricEigenvalues", expected: "(\(n), \(n))", got: [matrix.count])
    }
    var a = matrix   // ssyevd overwrites its input
    var w = [Float](repeating: 0, count: n)
    let info = a.withUnsafeMutableBufferPointer { ap in
        w.withUnsafeMutableBufferPointer { wp in
            bnk_ssyevd(CChar(UInt8(ascii: "N")), Int32(n), ap.baseAddress!, Int32(n), wp.baseAddress!)
        }
    }
    guard info == 0 else {
        throw BatchNormKitError.invalidArgument(name: "matrix", value: "(\(n), \(n))", requirement: "LAPACK ssyevd failed with info \(info)")
    }
    return w
}
