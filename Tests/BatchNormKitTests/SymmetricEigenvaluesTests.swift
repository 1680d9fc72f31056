import Testing
@testable import BatchNormKit

@Suite("LAPACKE link: symmetric eigenvalues")
struct SymmetricEigenvaluesTests {
    @Test("a 3×3 matrix with known spectrum")
    func knownSpectrum() throws {
        // [[2,1,0],[1,2,1],[0,1,2]] has eigenvalues 2 − √2, 2, 2 + √2.
        let w = try symmetricEigenvalues([2, 1, 0, 1, 2, 1, 0, 1, 2], n: 3)
        let root2 = Float(2).squareRoot()
        let want: [Float] = [2 - root2, 2, 2 + root2]
        for (got, expected) in zip(w, want) { #expect(abs(got - expected) < 1e-5, "\(w)") }
    }

    @Test("a wrongly sized matrix is a typed error")
    func wrongSize() {
        #expect(throws: BatchNormKitError.self) { try symmetricEigenvalues([1, 2, 3], n: 2) }
    }
}
