import Testing
import BatchNormReference
@testable import BatchNormKit

// LayerNorm and GroupNorm: PyTorch's numbers (float32 within 1e-4 as the other
// golden tests; its float64 run of the same inputs within 2e-5), finite
// differences of the Double reference (same tolerances as GradientCheckTests),
// and what must hold because statistics are per sample.

@Suite("LayerNorm and GroupNorm")
struct GroupNormalizationTests {
    @Test("against PyTorch: forward and every gradient", arguments: ["layernorm", "groupnorm"])
    func golden(name: String) throws {
        let f = try fixture(name + ".safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        let layer: _GroupNormalization = name == "layernorm"
            ? try LayerNorm(normalizedShape: Array(x.shape.dropFirst()))
            : try GroupNorm(numGroups: 2, numChannels: x.shape[1])
        try layer.weight!.value.assign(from: try f.tensor("weight"))
        try layer.bias!.value.assign(from: try f.tensor("bias"))
        let y = try layer.forward(x).scalars
        let dx = try layer.backward(dy).scalars
        for (got, key) in [(y, "y"), (dx, "dx"), (layer.weight!.grad.scalars, "dweight"), (layer.bias!.grad.scalars, "dbias")] {
            let torch32 = expectClose(got, try f.floats(key), rtol: 1e-4, atol: 1e-4, key)
            #expect(torch32.ok, "\(name) \(torch32.message)")
            let exact = expectClose(got, try #require(f.tensors[key + "_f64"]).doubles, rtol: 1e-5, atol: 2e-5, key + "_f64")
            #expect(exact.ok, "\(name) \(exact.message)")
        }
    }

    /// (layer kind, input shape): LayerNorm over one and two trailing axes,
    /// GroupNorm on 2-D and 4-D input, instance-norm groups.
    static let gradientCases: [(String, [Int])] = [
        ("layer", [5, 6]), ("layer", [3, 2, 5]), ("group", [4, 6]), ("group", [2, 6, 2, 3]), ("instance", [3, 4, 5]),
    ]

    @Test("finite differences: dx, dγ, dβ", arguments: gradientCases)
    func gradients(kind: String, shape: [Int]) throws {
        var rng = ReferenceRandom(seed: 61)
        let layer: _GroupNormalization
        let n: Int, c: Int, groups: Int, l: Int
        switch kind {
        case "layer":
            // LayerNorm over the last two axes of a 3-D input: rows of 2·5
            let normalized = shape.count == 3 ? Array(shape.suffix(2)) : [shape[1]]
            layer = try LayerNorm(normalizedShape: normalized)
            c = normalized.reduce(1, *); n = shape.reduce(1, *) / c; groups = 1; l = 1
        default:
            c = shape[1]; n = shape[0]; l = shape.dropFirst(2).reduce(1, *)
            groups = kind == "instance" ? c : 3
            layer = try GroupNorm(numGroups: groups, numChannels: c)
        }
        let gamma = (0..<c).map { _ in 0.5 + rng.unit() }, beta = (0..<c).map { _ in rng.normal() }
        layer.weight!.value.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(gamma[i]) } }
        layer.bias!.value.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(beta[i]) } }
        let x = rng.batch(n: n, c: c, l: l), r = rng.normals(x.count)
        _ = try layer.forward(.of(shape, x))
        let dx = try layer.backward(.of(shape, r))
        func loss(_ x: [Double], _ g: [Double], _ b: [Double]) -> Double {
            dot(GroupNormReference.forward(x, n: n, c: c, groups: groups, l: l, gamma: g, beta: b, eps: 1e-5), r)
        }
        let xd = x.map(Double.init)
        let gd = layer.weight!.value.scalars.map(Double.init), bd = layer.bias!.value.scalars.map(Double.init)
        func check(_ analytic: [Float], _ at: [Double], _ f: ([Double]) -> Double, _ what: String) {
            let scale = max(1e-3, analytic.map { abs(Double($0)) }.max() ?? 0)
            for i in probeIndices(at.count) {
                let numeric = numericGradient(at, at: i, f)
                #expect(abs(Double(analytic[i]) - numeric) <= 1e-3 * abs(numeric) + 1e-4 * scale,
                        "\(kind) \(shape) \(what)[\(i)]: analytic \(analytic[i]), numeric \(numeric)")
            }
        }
        check(dx.scalars, xd, { loss($0, gd, bd) }, "dx")
        check(layer.weight!.grad.scalars, gd, { loss(xd, $0, bd) }, "dγ")
        check(layer.bias!.grad.scalars, bd, { loss(xd, gd, $0) }, "dβ")
    }

    @Test("per-sample statistics: a sample's output is the same alone, in any batch, in train and eval")
    func batchIndependence() throws {
        var rng = ReferenceRandom(seed: 67)
        let x = rng.batch(n: 6, c: 8, l: 3)
        for layer in [try LayerNorm(normalizedShape: [8, 3]) as _GroupNormalization, try GroupNorm(numGroups: 4, numChannels: 8)] {
            let whole = try layer.forward(.of([6, 8, 3], x)).scalars
            layer.eval()
            let alone = try layer.forward(.of([1, 8, 3], Array(x[24..<48]))).scalars
            #expect(alone == Array(whole[24..<48]), "\(layer.context)")
        }
    }

    @Test("without affine or bias: the parameters PyTorch would have, and dx still right")
    func parameterVariants() throws {
        let noAffine = try LayerNorm(normalizedShape: [4], elementwiseAffine: false)
        #expect(noAffine.namedParameters().isEmpty)
        let noBias = try LayerNorm(normalizedShape: [4], bias: false)
        #expect(noBias.namedParameters().map(\.name) == ["weight"])
        #expect(try GroupNorm(numGroups: 1, numChannels: 3, affine: false).namedParameters().isEmpty)
        #expect(try GroupNorm(numGroups: 1, numChannels: 3).namedParameters().map(\.name) == ["weight", "bias"])
        // without bias: y and dx as with β = 0, dγ as PyTorch defines it
        let x: [Float] = [1, 2, 4, 8, 0, -1, 3, 5], dy: [Float] = [0.5, -1, 2, 0.25, 1, 1, -2, 0]
        let full = try LayerNorm(normalizedShape: [4])
        #expect(try noBias.forward(.of([2, 4], x)).scalars == (try full.forward(.of([2, 4], x))).scalars)
        #expect(try noBias.backward(.of([2, 4], dy)).scalars == (try full.backward(.of([2, 4], dy))).scalars)
        #expect(noBias.weight!.grad.scalars == full.weight!.grad.scalars)
        let bare = try noAffine.forward(.of([2, 4], x)).scalars
        #expect(bare == (try full.forward(.of([2, 4], x))).scalars)   // γ = 1, β = 0
    }

    @Test("bad arguments and inputs throw typed errors")
    func errors() throws {
        #expect(throws: BatchNormKitError.self) { try GroupNorm(numGroups: 4, numChannels: 6) }
        #expect(throws: BatchNormKitError.self) { try GroupNorm(numGroups: 0, numChannels: 6) }
        #expect(throws: BatchNormKitError.self) { try LayerNorm(normalizedShape: []) }
        #expect(throws: BatchNormKitError.self) { try LayerNorm(normalizedShape: [3, 0]) }
        #expect(throws: BatchNormKitError.self) { try LayerNorm(normalizedShape: [3], eps: 0) }
        let ln = try LayerNorm(normalizedShape: [2, 3])
        #expect(throws: BatchNormKitError.shapeMismatch(context: "LayerNorm([2, 3])", expected: "(*, 2, 3)", got: [4, 3, 2])) {
            try ln.forward(.of([4, 3, 2], [Float](repeating: 0, count: 24)))
        }
        #expect(throws: BatchNormKitError.emptyBatch(context: "LayerNorm([2, 3])")) { try ln.forward(try Tensor(zeros: [0, 2, 3])) }
        #expect(throws: BatchNormKitError.self) { try ln.backward(.of([1, 2, 3], [Float](repeating: 0, count: 6))) }  // before forward
        let gn = try GroupNorm(numGroups: 2, numChannels: 4)
        #expect(throws: BatchNormKitError.featureCountMismatch(context: "GroupNorm(2, 4)", expected: 4, got: 3)) {
            try gn.forward(.of([2, 3], [Float](repeating: 0, count: 6)))
        }
        #expect(throws: BatchNormKitError.self) { try gn.forward(.of([4], [1, 2, 3, 4])) }
        _ = try gn.forward(.of([1, 4], [1, 2, 3, 4]))   // one sample is enough: statistics are per sample
        #expect(throws: BatchNormKitError.self) { try gn.backward(.of([1, 2], [1, 2])) }
    }
}
