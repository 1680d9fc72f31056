import Testing
import BatchNormReference
@testable import BatchNormKit

// The Lanczos estimate against the whole Hessian of a small seed network,
// built in Double from second differences of the reference loss
// (h = 1e-4: truncation ~h², rounding ~1e-16/h² — both near 1e-8 here) and
// diagonalized by LAPACK. The estimate uses Float32 gradients and a first
// difference (measured agreement: 1e-5 relative), held to 0.1% of the top eigenvalue.

@Suite("HessianSpectrum: Lanczos on finite-difference Hessian-vector products")
struct HessianSpectrumTests {
    @Test("top eigenvalues match the full Hessian's; the model is left as it was", arguments: [true, false])
    func matchesFullHessian(batchNorm: Bool) throws {
        let input = 5, hidden = 4, classes = 3, n = 12
        let net = try SeedNetwork(inputSize: input, hiddenSizes: [hidden], classes: classes, batchNorm: batchNorm, seed: 3)
        var rng = ReferenceRandom(seed: 71)
        let x = rng.normals(n * input), labels: [Int32] = (0..<n).map { Int32($0 % classes) }
        let before = net.stateDict()

        let estimate = try HessianSpectrum.topEigenvalues(of: net, inputs: .of([n, input], x), labels: labels,
                                                          count: 3, steps: 40, epsilon: 1e-3)
        #expect(net.stateDict() == before, "parameters, buffers and counters restored")

        // the reference: every parameter in one Double vector, the seed network's loss on it
        let shapes = net.parameters().map(\.value.count)
        let theta = net.parameters().flatMap { $0.value.scalars.map(Double.init) }
        func loss(_ flat: [Double]) -> Double {
            var v: [[Double]] = [], at = 0
            for count in shapes { v.append(Array(flat[at..<(at + count)])); at += count }
            var h = x.map(Double.init), p = 0
            h = BatchNormReference.linearForward(h, n: n, inFeatures: input, weight: v[p], bias: v[p + 1], outFeatures: hidden)
            p += 2
            if batchNorm {
                h = BatchNormReference.forwardTrain(h, n: n, c: hidden, gamma: v[p], beta: v[p + 1], eps: 1e-5)
                p += 2
            }
            h = BatchNormReference.relu(h)
            let logits = BatchNormReference.linearForward(h, n: n, inFeatures: hidden, weight: v[p], bias: v[p + 1], outFeatures: classes)
            return BatchNormReference.crossEntropy(logits: logits, labels: labels.map(Int.init), n: n, classes: classes).loss
        }
        let d = theta.count, h = 1e-4
        var hessian = [Float](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                func at(_ si: Double, _ sj: Double) -> Double {
                    var t = theta; t[i] += si * h; t[j] += sj * h; return loss(t)
                }
                let value = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h)
                hessian[i * d + j] = Float(value); hessian[j * d + i] = Float(value)
            }
        }
        let exact = try symmetricEigenvalues(hessian, n: d).map(Double.init).sorted(by: >)
        for k in 0..<3 {
            #expect(abs(estimate[k] - exact[k]) <= 1e-3 * abs(exact[0]), "eigenvalue \(k): Lanczos \(estimate[k]), full Hessian \(exact[k])")
        }
    }

    @Test("bad arguments throw")
    func errors() throws {
        let net = try SeedNetwork(inputSize: 3, hiddenSizes: [2], classes: 2)
        let x = Tensor.of([2, 3], [1, 2, 3, 4, 5, 6])
        #expect(throws: BatchNormKitError.self) { try HessianSpectrum.topEigenvalues(of: net, inputs: x, labels: [0, 1], count: 0) }
        #expect(throws: BatchNormKitError.self) { try HessianSpectrum.topEigenvalues(of: net, inputs: x, labels: [0, 1], count: 5, steps: 3) }
        #expect(throws: BatchNormKitError.self) { try HessianSpectrum.topEigenvalues(of: net, inputs: x, labels: [0, 1, 1]) }
    }
}
