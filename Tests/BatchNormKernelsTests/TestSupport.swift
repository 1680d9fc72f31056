import BatchNormKernels
import BatchNormTestSupport

typealias TestRandom = ReferenceRandom

extension ReferenceRandom {
    init(_ seed: UInt64) { self.init(seed: seed) }
}

func closeEnough<A: Collection, B: Collection>(_ got: A, _ want: B, rtol: Double, atol: Double) -> (ok: Bool, worst: String)
where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    compareToReference(got, want, rtol: rtol, atol: atol)
}

/// Shapes every kernel is tried on: odd and tiny feature counts exercise the
/// vector tails, N = 2 is the smallest trainable batch, N = 130 spans blocks.
let kernelShapes: [BatchNormShape] = [
    .init(n: 2, c: 1), .init(n: 2, c: 3), .init(n: 5, c: 17), .init(n: 130, c: 8),
    .init(n: 65, c: 1000), .init(n: 3, c: 64), .init(n: 2, c: 3, l: 5),
    .init(n: 4, c: 17, l: 9), .init(n: 3, c: 2, l: 600),
]
