import Foundation
import BatchNormReference
@testable import BatchNormKit

/// Directory of the committed golden files written by Scripts/make_fixtures.py.
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

extension Tensor {
    /// A tensor from `scalars`, for tests whose shapes are known to fit.
    static func of(_ shape: [Int], _ scalars: [Float]) -> Tensor { try! Tensor(shape: shape, scalars: scalars) }
}

/// Float32 layer output against a Double oracle, with tolerances the caller states.
func expectClose<A: Collection, B: Collection>(
    _ got: A, _ want: B, rtol: Double, atol: Double, _ what: String
) -> (ok: Bool, message: String) where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    let r = compareToReference(got, want, rtol: rtol, atol: atol)
    return (r.ok, "\(what): \(r.worst)")
}

/// Central finite difference of a Double function of one coordinate of `x`.
func numericGradient(_ x: [Double], at i: Int, h: Double = 1e-5, _ f: ([Double]) -> Double) -> Double {
    var plus = x, minus = x
    plus[i] += h; minus[i] -= h
    return (f(plus) - f(minus)) / (2 * h)
}

/// Σ r⊙y, the scalar loss whose gradient with respect to y is r.
func dot(_ y: [Double], _ r: [Float]) -> Double {
    zip(y, r).reduce(0) { $0 + $1.0 * Double($1.1) }
}

/// Indices to probe in finite-difference checks: all for small arrays,
/// an evenly spread subset otherwise (each probe costs two forwards).
func probeIndices(_ count: Int, limit: Int = 24) -> [Int] {
    count <= limit ? Array(0..<count) : (0..<limit).map { min(count - 1, $0 * count / limit + ($0 % 3)) }
}

/// A fresh, empty directory under the system's temporary directory, named
/// after `owner`, so parallel tests never share files. The caller removes it.
func makeTemporaryDirectory(_ owner: String) -> String {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(owner)-\(UUID().uuidString)", isDirectory: true)
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}
