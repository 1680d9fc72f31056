import Testing
import BatchNormReference
@testable import BatchNormKit

// Finite-difference checks: the layers' Float32 analytic gradients against
// central differences (h = 1e-5) of the Double reference forward. The
// difference quotient is accurate to ~1e-9 in Double, so the tolerance
// (rtol 1e-3 + atol 1e-4 of the gradient's scale) only absorbs Float32
// rounding in the analytic gradient — a wrong formula misses by O(1).

@Suite("Finite-difference gradient checks (Double)")
struct GradientCheckTests {
    func check(_ analytic: [Float], _ x: [Double], _ f: ([Double]) -> Double, _ what: String, probes: Int = 24) {
        let scale = max(1e-3, analytic.map { abs(Double($0)) }.max() ?? 0)
        for i in probeIndices(x.count, limit: probes) {
            let numeric = numericGradient(x, at: i, f)
            #expect(abs(Double(analytic[i]) - numeric) <= 1e-3 * abs(numeric) + 1e-4 * scale,
                    "\(what)[\(i)]: analytic \(analytic[i]), numeric \(numeric)")
        }
    }

    @Test("BatchNorm1d 2-D and 3-D, BatchNorm2d 4-D, train and eval",
          arguments: [(false, [6, 4]), (true, [6, 4]), (false, [3, 2, 5]), (true, [3, 2, 5]),
                      (false, [2, 3, 2, 3]), (true, [2, 3, 2, 3])])
    func batchNorm(evalMode: Bool, shape: [Int]) throws {
        // (N, C, H, W) is (N, C, L = H·W) to the reference: the same per-channel statistics
        let n = shape[0], c = shape[1], l = shape.dropFirst(2).reduce(1, *)
        var rng = ReferenceRandom(seed: 21)
        let bn: _BatchNorm = shape.count == 4 ? try BatchNorm2d(numFeatures: c) : try BatchNorm1d(numFeatures: c)
        let gamma = (0..<c).map { _ in 0.5 + rng.unit() }, beta = (0..<c).map { _ in rng.normal() }
        bn.weight!.value.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(gamma[i]) } }
        bn.bias!.value.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(beta[i]) } }
        let rm = (0..<c).map { _ in rng.normal() }, rv = (0..<c).map { _ in 0.5 + rng.unit() }
        bn.runningMean!.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(rm[i]) } }
        bn.runningVar!.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = Float(rv[i]) } }
        if evalMode { bn.eval() }
        let x = rng.batch(n: n, c: c, l: l), r = rng.normals(x.count)
        _ = try bn.forward(.of(shape, x))
        let dx = try bn.backward(.of(shape, r))
        // Float32 running buffers are what the layer uses: feed the oracle the same values
        let rmF = bn.runningMean!.scalars.map(Double.init), rvF = bn.runningVar!.scalars.map(Double.init)
        func loss(_ x: [Double], _ g: [Double], _ b: [Double]) -> Double {
            let y = evalMode
                ? BatchNormReference.forwardEval(x, n: n, c: c, l: l, runningMean: rmF, runningVar: rvF, gamma: g, beta: b, eps: 1e-5)
                : BatchNormReference.forwardTrain(x, n: n, c: c, l: l, gamma: g, beta: b, eps: 1e-5)
            return dot(y, r)
        }
        let xd = x.map(Double.init)
        let gd = bn.weight!.value.scalars.map(Double.init), bd = bn.bias!.value.scalars.map(Double.init)
        check(dx.scalars, xd, { loss($0, gd, bd) }, "dx")
        check(bn.weight!.grad.scalars, gd, { loss(xd, $0, bd) }, "dγ")
        check(bn.bias!.grad.scalars, bd, { loss(xd, gd, $0) }, "dβ")
    }

    @Test("Linear: dX, dW, db")
    func linear() throws {
        let n = 5, i = 7, o = 3
        let layer = try Linear(inFeatures: i, outFeatures: o, seed: 3)
        var rng = ReferenceRandom(seed: 1)
        let x = rng.normals(n * i), r = rng.normals(n * o)
        _ = try layer.forward(.of([n, i], x))
        let dx = try layer.backward(.of([n, o], r))
        let w = layer.weight.value.scalars.map(Double.init), b = layer.bias!.value.scalars.map(Double.init)
        let xd = x.map(Double.init)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            dot(BatchNormReference.linearForward(x, n: n, inFeatures: i, weight: w, bias: b, outFeatures: o), r)
        }
        check(dx.scalars, xd, { loss($0, w, b) }, "dX")
        check(layer.weight.grad.scalars, w, { loss(xd, $0, b) }, "dW")
        check(layer.bias!.grad.scalars, b, { loss(xd, w, $0) }, "db")
    }

    @Test("softmax cross-entropy on logits, and Softmax / LogSoftmax layers")
    func crossEntropy() throws {
        let n = 4, k = 6
        var rng = ReferenceRandom(seed: 17)
        let logits = rng.normals(n * k, scale: 3), labels: [Int32] = [0, 5, 2, 2]
        let loss = CrossEntropyLoss()
        let value = try loss.forward(logits: .of([n, k], logits), labels: labels)
        let ref = BatchNormReference.crossEntropy(logits: logits, labels: labels.map(Int.init), n: n, classes: k)
        #expect(abs(Double(value) - ref.loss) < 1e-5)
        let z = logits.map(Double.init)
        check(try loss.backward().scalars, z, { BatchNormReference.crossEntropy(logits: $0, labels: labels.map(Int.init), n: n, classes: k).loss }, "dlogits")

        let r = rng.normals(n * k)
        let softmax = Softmax(), logSoftmax = LogSoftmax()
        _ = try softmax.forward(.of([n, k], logits)); _ = try logSoftmax.forward(.of([n, k], logits))
        check(try softmax.backward(.of([n, k], r)).scalars, z, { dot(BatchNormReference.softmax($0, n: n, classes: k), r) }, "softmax dx")
        check(try logSoftmax.backward(.of([n, k], r)).scalars, z, { dot(BatchNormReference.logSoftmax($0, n: n, classes: k), r) }, "logSoftmax dx")
    }

    /// (input, hidden widths, classes, batch, probes per parameter)
    static let seedShapes: [(Int, [Int], Int, Int, Int)] = [
        (12, [10, 6], 4, 8, 24),       // every weight probed, small widths
        (784, [256, 64], 10, 4, 3),    // the seed network's real widths, a few probes per tensor
    ]

    @Test("the whole seed network, train mode, every parameter tensor", arguments: seedShapes)
    func seedNetwork(input: Int, hidden: [Int], classes: Int, n: Int, probes: Int) throws {
        let net = try SeedNetwork(inputSize: input, hiddenSizes: hidden, classes: classes, seed: 5)
        var rng = ReferenceRandom(seed: 23)
        let x = rng.normals(n * input), labels: [Int32] = (0..<n).map { Int32($0 % classes) }
        let ce = CrossEntropyLoss()
        _ = try ce.forward(logits: try net.forward(.of([n, input], x)), labels: labels)
        try net.layers.backward(try ce.backward())

        let params = net.namedParameters()
        var values = params.map { $0.parameter.value.scalars.map(Double.init) }
        func loss(_ v: [[Double]]) -> Double {
            var h = x.map(Double.init), width = input, p = 0
            for out in hidden {
                h = BatchNormReference.linearForward(h, n: n, inFeatures: width, weight: v[p], bias: v[p + 1], outFeatures: out)
                h = BatchNormReference.forwardTrain(h, n: n, c: out, gamma: v[p + 2], beta: v[p + 3], eps: 1e-5)
                h = BatchNormReference.relu(h)
                width = out; p += 4
            }
            let logits = BatchNormReference.linearForward(h, n: n, inFeatures: width, weight: v[p], bias: v[p + 1], outFeatures: classes)
            return BatchNormReference.crossEntropy(logits: logits, labels: labels.map(Int.init), n: n, classes: classes).loss
        }
        #expect(params.map(\.name) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                       "layers.3.weight", "layers.3.bias", "layers.4.weight", "layers.4.bias",
                                       "layers.6.weight", "layers.6.bias"])
        for (index, (name, parameter)) in params.enumerated() {
            let base = values[index]
            check(parameter.grad.scalars, base, { values[index] = $0; defer { values[index] = base }; return loss(values) }, name, probes: probes)
        }
    }
}
