import Testing
import Foundation
@testable import BatchNormKit

// Sigmoid, Tanh, SELU, GELU (exact and tanh), LeakyReLU against PyTorch's
// numbers (Fixtures/activations.safetensors, Scripts/make_activation_fixtures.py)
// and against central finite differences of a Double twin of each formula.
// Tolerances: both sides are Float32 libm (expf, erff, tanhf), each within a
// few ulps, so outputs and gradients of O(1) agree to rtol 1e-5 + atol 1e-6;
// the Double twin's central difference (h = 1e-6) is accurate to ~1e-9, so the
// analytic Float32 gradient must match it to the same Float32 rounding.

/// A Double twin of every activation: f and the layer under test.
private struct Case: Sendable, CustomTestStringConvertible {
    let key: String
    let make: @Sendable () throws -> Layer
    let f: @Sendable (Double) -> Double
    var testDescription: String { key }
}

private let selu = (scale: 1.0507009873554804934193349852946, alpha: 1.6732632423543772848170429916717)

private let cases: [Case] = [
    Case(key: "sigmoid", make: { Sigmoid() }, f: { 1 / (1 + exp(-$0)) }),
    Case(key: "tanh", make: { Tanh() }, f: { tanh($0) }),
    Case(key: "selu", make: { SELU() }, f: { $0 > 0 ? selu.scale * $0 : selu.scale * selu.alpha * expm1($0) }),
    Case(key: "gelu", make: { GELU() }, f: { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }),
    Case(key: "gelu_tanh", make: { GELU(approximate: .tanh) },
         f: { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }),
    Case(key: "leaky_relu", make: { try LeakyReLU() }, f: { $0 > 0 ? $0 : 0.01 * $0 }),
    Case(key: "leaky_relu_0.2", make: { try LeakyReLU(negativeSlope: 0.2) }, f: { $0 > 0 ? $0 : 0.2 * $0 }),
]

@Suite("Activations: Sigmoid, Tanh, SELU, GELU, LeakyReLU")
struct ActivationTests {
    @Test("forward and backward match PyTorch", arguments: cases)
    fileprivate func pytorch(_ c: Case) throws {
        let f = try fixture("activations.safetensors")
        let layer = try c.make()
        let y = try layer.forward(try f.tensor("x"))
        let r = expectClose(y.scalars, try f.floats("y_" + c.key), rtol: 1e-5, atol: 1e-6, "\(c.key) y")
        #expect(r.ok, "\(r.message)")
        let dx = try layer.backward(try f.tensor("dy"))
        let g = expectClose(dx.scalars, try f.floats("dx_" + c.key), rtol: 1e-5, atol: 1e-6, "\(c.key) dx")
        #expect(g.ok, "\(g.message)")
    }

    @Test("forward matches the Double formula, backward its central finite difference", arguments: cases)
    fileprivate func finiteDifferences(_ c: Case) throws {
        // away from the kink at 0 (LeakyReLU, SELU): |x| ≥ 0.05
        let xs: [Float] = stride(from: -9.0, through: 9.0, by: 0.37).map { Float($0) }.filter { abs($0) >= 0.05 }
        let layer = try c.make()
        let y = try layer.forward(Tensor.of([3, xs.count / 3], Array(xs.prefix(xs.count / 3 * 3))))
        let used = y.count
        let want = xs.prefix(used).map { c.f(Double($0)) }
        let r = expectClose(y.scalars, want, rtol: 1e-5, atol: 1e-6, "\(c.key) forward")
        #expect(r.ok, "\(r.message)")
        let ones = Tensor.of(y.shape, [Float](repeating: 1, count: used))
        let dx = try layer.backward(ones)
        let h = 1e-6
        let numeric = xs.prefix(used).map { (c.f(Double($0) + h) - c.f(Double($0) - h)) / (2 * h) }
        let g = expectClose(dx.scalars, numeric, rtol: 1e-5, atol: 1e-6, "\(c.key) derivative")
        #expect(g.ok, "\(g.message)")
    }

    @Test("outputs stay finite for extreme inputs; gradient before forward and wrong shapes throw")
    func edges() throws {
        let x = Tensor.of([1, 4], [-1e30, -100, 100, 1e30])
        for c in cases {
            let layer = try c.make()
            let y = try layer.forward(x)
            #expect(y.scalars.allSatisfy { $0.isFinite }, "\(c.key): \(y.scalars)")
            let dx = try layer.backward(Tensor.of([1, 4], [1, 1, 1, 1]))
            #expect(dx.scalars.allSatisfy { $0.isFinite }, "\(c.key) dx: \(dx.scalars)")
            #expect(throws: BatchNormKitError.self) { try layer.backward(Tensor.of([1, 3], [0, 0, 0])) }
        }
        // sigmoid and tanh saturate exactly to their bounds without overflow
        let s = try Sigmoid().forward(x).scalars
        #expect(s[0] == 0 && s[1] > 0 && s[1] < 1e-40 && s[2] == 1 && s[3] == 1, "\(s)")
        #expect(try Tanh().forward(x).scalars == [-1, -1, 1, 1])
        #expect(throws: BatchNormKitError.self) { try Sigmoid().backward(x) }
        #expect(throws: BatchNormKitError.self) { try LeakyReLU(negativeSlope: .nan) }
        #expect(Sigmoid.isSaturated(output: 0.999) && !Sigmoid.isSaturated(output: 0.5))
    }
}
