import BatchNormTestSupport

// The test-support target's names for every file of this target (so a test
// file needs no import of its own; BatchNormTestSupport is not a product).
typealias ReferenceRandom = BatchNormTestSupport.ReferenceRandom

func compareToReference<A: Collection, B: Collection>(
    _ got: A, _ want: B, rtol: Double, atol: Double
) -> (ok: Bool, worst: String) where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    BatchNormTestSupport.compareToReference(got, want, rtol: rtol, atol: atol)
}
