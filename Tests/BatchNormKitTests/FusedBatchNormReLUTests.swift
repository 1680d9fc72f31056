import Testing
import BatchNormTestSupport
@testable import BatchNormKit

// Sequential runs BatchNorm → ReLU as one fused pass (forwardReLU /
// backwardReLU). The fused kernels compute the same Float32 expressions as the
// unfused pair (the clamp is applied to the value normalizeAffine would
// store; the masked gradient enters the same sums in the same order on these
// cache-resident batches — from memory the fused reduction reads two rows per
// pass, `_PairTerms.leastRowGroup`), so every comparison here is
// *bit-identical*: ==, no tolerance. The kernels' own
// tests (FusedReLUKernelTests) check the fused kernels against their Double
// twins.

@Suite("BatchNorm → ReLU fused in Sequential")
struct FusedBatchNormReLUTests {
    @Test("The seed network fuses both BatchNorm1d → ReLU pairs, state names unchanged")
    func seedNetworkFuses() throws {
        let net = try SeedNetwork(inputSize: 20, hiddenSizes: [12, 7], seed: 3)
        _ = try net.forward(randomInput([9, 20], seed: 1))
        let norms = net.layers.layers.compactMap { $0 as? BatchNorm1d }
        #expect(norms.count == 2 && norms.allSatisfy { $0.lastForwardFusedReLU })
        #expect(net.namedStateEntries(prefix: "").map(\.name).filter { $0.hasPrefix("layers.1.") || $0.hasPrefix("layers.4.") }
                == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "layers.1." + $0 }
                 + ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map { "layers.4." + $0 })
        // placement "after" (ReLU → BatchNorm) has nothing to fuse
        let after = try SeedNetwork(inputSize: 20, hiddenSizes: [12], placement: .after, seed: 3)
        _ = try after.forward(randomInput([9, 20], seed: 1))
        #expect(after.layers.layers.compactMap { $0 as? BatchNorm1d }.allSatisfy { !$0.lastForwardFusedReLU })
    }

    @Test("Seed network: training steps fused and unfused are bit-identical (logits, loss, every gradient, state)",
          arguments: [1, 8, 33])
    func seedNetworkTrainingIdentical(batch: Int) throws {
        let (fused, plain) = try fusedPair({ try SeedNetwork(inputSize: 30, hiddenSizes: [19, 11], seed: 7) }, sequentials: { [$0.layers] })
        let labels = (0..<batch).map { Int32($0 % 10) }
        if batch == 1 {
            // one sample per feature: both refuse alike
            #expect(throws: BatchNormKitError.self) { try fused.forward(randomInput([1, 30], seed: 2)) }
            #expect(throws: BatchNormKitError.self) { try plain.forward(randomInput([1, 30], seed: 2)) }
            return
        }
        try stepBothExpectingIdentical(fused, plain, input: randomInput([batch, 30], seed: 2), labels: labels, steps: 3)
        // eval mode: running statistics, dx = γ/σ·dy masked
        fused.eval(); plain.eval()
        try stepBothExpectingIdentical(fused, plain, input: randomInput([batch, 30], seed: 5), labels: labels, steps: 1)
    }

    @Test("CNN: BatchNorm2d → ReLU and BatchNorm1d → ReLU fused, bit-identical to unfused")
    func cnnIdentical() throws {
        let arch = CNNArchitecture(imageSize: 10, channels: [3, 4], hiddenSize: 6)
        let (fused, plain) = try fusedPair({ try CNN(arch, seed: 4) }, sequentials: { [$0.features, $0.classifier] })
        try stepBothExpectingIdentical(fused, plain, input: randomInput([5, 100], seed: 8), labels: [0, 1, 2, 3, 4], steps: 2)
        #expect(fused.features.layers.compactMap { $0 as? BatchNorm2d }.allSatisfy { $0.lastForwardFusedReLU })
    }

    @Test("Network builder: BatchNorm → ReLU fuses, BatchNorm → LeakyReLU does not; LayerNorm → ReLU too: the same results")
    func builderIdentical() throws {
        for (norm, activation) in [(NormKind.batchnorm, ActivationKind.relu), (.batchnorm, .leakyrelu), (.layernorm, .relu)] {
            let spec = NetworkSpec(inputSize: 16, hiddenSizes: [10, 10], norm: norm, activation: activation)
            let (fused, plain) = try fusedPair({ try FeedForwardNetwork(spec: spec, seed: 11) }, sequentials: { [$0.layers] })
            try stepBothExpectingIdentical(fused, plain, input: randomInput([6, 16], seed: 9), labels: [1, 2, 3, 4, 5, 6], steps: 2)
            let fusedNorms = fused.layers.layers.compactMap { ($0 as? BatchNorm1d)?.lastForwardFusedReLU }
            #expect(fusedNorms.allSatisfy { $0 == (activation == .relu) }, "\(norm) \(activation)")
        }
    }

    @Test("Probes run the layers one by one; the backward after them is the unfused one, same gradients")
    func probesRunUnfused() throws {
        let spec = NetworkSpec(inputSize: 16, hiddenSizes: [10])
        let (probed, fused) = try fusedPair({ try FeedForwardNetwork(spec: spec, seed: 2) }, sequentials: { _ in [] })
        probed.probesEnabled = true
        let x = randomInput([6, 16], seed: 3)
        try stepBothExpectingIdentical(probed, fused, input: x, labels: [0, 1, 2, 3, 4, 5], steps: 1)
        let block = probed.blocks[0]
        #expect((probed.layers.layers[block.norm!] as! BatchNorm1d).lastForwardFusedReLU == false)
        // the probe sees the pre-activation (BatchNorm's output), negative values included
        #expect(try #require(probed.preActivation(block: 0)).scalars.contains { $0 < 0 })
        #expect(try #require(probed.activationOutput(block: 0)).scalars.allSatisfy { $0 >= 0 })
    }

    @Test("forwardReLU / backwardReLU on (N, C, L) equal BatchNorm1d then ReLU, train and eval, with and without affine")
    func layerPairIdentical() throws {
        for affine in [true, false] {
            let fusedNorm = try BatchNorm1d(numFeatures: 5, affine: affine), plainNorm = try BatchNorm1d(numFeatures: 5, affine: affine)
            if affine {
                for n in [fusedNorm, plainNorm] {
                    try n.weight!.value.assign(from: Tensor(shape: [5], scalars: [1.5, -0.5, 2, 0.25, 1]))
                    try n.bias!.value.assign(from: Tensor(shape: [5], scalars: [0.1, 0.2, -0.3, 0, 1]))
                }
            }
            let relu = ReLU()
            for training in [true, false] {
                fusedNorm.setTraining(training); plainNorm.setTraining(training)
                let x = randomInput([7, 5, 3], seed: 21), dy = randomInput([7, 5, 3], seed: 22)
                let yF = try fusedNorm.forwardReLU(x), yP = try relu.forward(try plainNorm.forward(x))
                #expect(yF.scalars == yP.scalars)
                #expect(yF.scalars.contains(0) && yF.scalars.contains { $0 > 0 })
                let dxF = try #require(try fusedNorm.backwardReLU(dy, needsInputGradient: true))
                let dxP = try plainNorm.backward(try relu.backward(dy))
                #expect(dxF.scalars == dxP.scalars, "affine \(affine), training \(training)")
                if affine {
                    #expect(fusedNorm.weight!.grad.scalars == plainNorm.weight!.grad.scalars)
                    #expect(fusedNorm.bias!.grad.scalars == plainNorm.bias!.grad.scalars)
                }
                expectSameState(fusedNorm, plainNorm)
            }
        }
    }

    @Test("backwardReLU before any forward, or with a wrongly shaped gradient, throws")
    func backwardReLUErrors() throws {
        let norm = try BatchNorm1d(numFeatures: 4)
        #expect(throws: BatchNormKitError.self) { try norm.backwardReLU(randomInput([3, 4], seed: 1), needsInputGradient: true) }
        _ = try norm.forwardReLU(randomInput([3, 4], seed: 1))
        #expect(throws: BatchNormKitError.self) { try norm.backwardReLU(randomInput([3, 5], seed: 1), needsInputGradient: true) }
    }
}
