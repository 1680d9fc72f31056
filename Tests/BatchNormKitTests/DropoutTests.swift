import Testing
import BatchNormReference
@testable import BatchNormKit

// Dropout's masks are random, so its statistics are checked with bounds that
// a correct layer misses with probability < 1e-6 (5 standard deviations of a
// binomial or of a sample mean), and its exact algebra element by element.

@Suite("Dropout and AlphaDropout")
struct DropoutTests {
    static let n = 100_000

    func input(_ seed: UInt64) -> Tensor {
        var rng = ReferenceRandom(seed: seed)
        return .of([Self.n / 100, 100], rng.normals(Self.n))
    }

    @Test("Dropout: about p of the elements dropped, the rest scaled by 1/(1 − p); backward uses the same mask",
          arguments: [Float(0.1), 0.5, 0.8])
    func dropout(p: Float) throws {
        let layer = try Dropout(p: p, seed: 3)
        let x = input(1), dy = input(2)
        let y = try layer.forward(x).scalars, dx = try layer.backward(dy).scalars
        let xs = x.scalars, g = dy.scalars
        var dropped = 0
        for i in 0..<Self.n {
            if y[i] == 0 {
                dropped += 1
                #expect(dx[i] == 0)
            } else {
                #expect(y[i] == xs[i] * (1 / (1 - p)) && dx[i] == g[i] * (1 / (1 - p)), "element \(i)")
            }
        }
        let expected = Double(p) * Double(Self.n), sigma = (expected * Double(1 - p)).squareRoot()
        #expect(abs(Double(dropped) - expected) < 5 * sigma, "dropped \(dropped), expected \(expected) ± \(sigma)")
    }

    @Test("AlphaDropout: SELU-normal input keeps mean 0 and variance 1; backward is a·dy on kept elements",
          arguments: [Float(0.05), 0.2, 0.5])
    func alphaDropout(p: Float) throws {
        let layer = try AlphaDropout(p: p, seed: 5)
        let x = input(7), dy = input(8)
        let y = try layer.forward(x).scalars.map(Double.init), dx = try layer.backward(dy).scalars
        let mean = y.reduce(0, +) / Double(Self.n)
        let variance = y.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(Self.n)
        // the sample mean of N unit-variance values has σ = 1/√N; the variance's σ ≈ √(2/N) (+ kurtosis)
        #expect(abs(mean) < 5 / Double(Self.n).squareRoot(), "mean \(mean)")
        #expect(abs(variance - 1) < 8 * (2 / Double(Self.n)).squareRoot(), "variance \(variance)")
        let alpha = Double(AlphaDropout.seluSaturation), q = 1 - Double(p)
        let a = 1 / ((alpha * alpha * Double(p) + 1) * q).squareRoot()
        let droppedValue = a * alpha * (Double(p) - 1)
        let xs = x.scalars, g = dy.scalars
        for i in stride(from: 0, to: Self.n, by: 97) {
            let kept = abs(y[i] - (a * Double(xs[i]) + a * alpha * Double(p))) < 1e-5
            let dropped = abs(y[i] - droppedValue) < 1e-6
            #expect(kept || dropped, "element \(i): \(y[i])")
            #expect(abs(Double(dx[i]) - (kept ? a * Double(g[i]) : 0)) < 1e-5, "dx element \(i)")
        }
    }

    @Test("eval mode and p = 0 are the identity; p = 1 gives zeros; a seed fixes the mask")
    func edges() throws {
        let x = input(11), dy = input(12)
        for layer in [try Dropout(p: 0.3) as _Dropout, try AlphaDropout(p: 0.3)] {
            layer.eval()
            #expect(try layer.forward(x).scalars == x.scalars)
            #expect(try layer.backward(dy).scalars == dy.scalars)
        }
        let none = try Dropout(p: 0)
        #expect(try none.forward(x).scalars == x.scalars)
        for layer in [try Dropout(p: 1) as _Dropout, try AlphaDropout(p: 1)] {
            #expect(try layer.forward(x).scalars.allSatisfy { $0 == 0 })
            #expect(try layer.backward(dy).scalars.allSatisfy { $0 == 0 })
        }
        let first = try Dropout(p: 0.5, seed: 9).forward(x).scalars
        #expect(try Dropout(p: 0.5, seed: 9).forward(x).scalars == first)
        #expect(try Dropout(p: 0.5, seed: 10).forward(x).scalars != first)
        // a new mask every training forward
        let layer = try Dropout(p: 0.5, seed: 9)
        #expect(try layer.forward(x).scalars != (try layer.forward(x)).scalars)
    }

    @Test("bad p throws; backward needs a forward of the same shape")
    func errors() throws {
        #expect(throws: BatchNormKitError.self) { try Dropout(p: -0.1) }
        #expect(throws: BatchNormKitError.self) { try AlphaDropout(p: 1.5) }
        #expect(throws: BatchNormKitError.self) { try Dropout(p: .nan) }
        let layer = try Dropout()
        #expect(throws: BatchNormKitError.self) { try layer.backward(.of([1, 2], [1, 2])) }
        _ = try layer.forward(.of([2, 2], [1, 2, 3, 4]))
        #expect(throws: BatchNormKitError.self) { try layer.backward(.of([1, 2], [1, 2])) }
    }
}
