import Testing
import BatchNormReference
@testable import BatchNormKit

@Suite("Gradients accumulate until zeroGrad, as in PyTorch")
struct GradientAccumulationTests {
    @Test("two backwards add; zeroGrad reads as zeros and the next backward starts from them")
    func accumulateAndReset() throws {
        let net = try SeedNetwork(inputSize: 6, hiddenSizes: [5, 4], classes: 3, seed: 9)
        var rng = ReferenceRandom(seed: 3)
        let x = try Tensor(shape: [4, 6], scalars: rng.normals(24)), labels: [Int32] = [0, 1, 2, 1]
        let loss = CrossEntropyLoss()
        let sgd = try SGD(parameters: net.parameters(), learningRate: 0.1)
        func backwardOnce() throws {
            _ = try loss.forward(logits: try net.forward(x), labels: labels)
            try net.layers.backward(try loss.backward())
        }
        try backwardOnce()
        let once = net.parameters().map { $0.grad.scalars }
        try backwardOnce()
        for (p, g) in zip(net.parameters(), once) {
            #expect(compareToReference(p.grad.scalars, g.map { 2 * Double($0) }, rtol: 1e-6, atol: 1e-7).ok)
        }
        sgd.zeroGrad()
        #expect(net.parameters().allSatisfy { $0.grad.scalars.allSatisfy { $0 == 0 } })
        sgd.zeroGrad()
        try backwardOnce()
        for (p, g) in zip(net.parameters(), once) { #expect(p.grad.scalars == g) }
    }
}
