import Testing
import BatchNormTestSupport
@testable import BatchNormKit

// Sequential runs GroupNorm → ReLU and LayerNorm → ReLU fused (forwardReLU /
// backwardReLU on _GroupNormalization), as it does BatchNorm → ReLU. The
// fused kernels compute the same Float32 expressions as the unfused pair
// (the clamp is applied to the value pass 2 would store; the masked gradient
// enters the same sums in the same order), so every comparison here is
// bit-identical: ==. The kernels' own tests (FusedGroupNormReLUKernelTests)
// check them against their Double twins. InstanceNorm is not fused.

/// Whether each GroupNorm / LayerNorm of `layers` ran its last forward fused.
private func fusedFlags(_ layers: Sequential) -> [Bool] {
    layers.layers.compactMap { ($0 as? _GroupNormalization)?.lastForwardFusedReLU }
}

@Suite("GroupNorm / LayerNorm → ReLU fused in Sequential")
struct FusedGroupNormReLUTests {
    @Test("Network builder: GroupNorm → ReLU and LayerNorm → ReLU fuse, bit-identical to unfused (train and eval)",
          arguments: [NormKind.groupnorm, .layernorm])
    func builderIdentical(norm: NormKind) throws {
        let spec = NetworkSpec(inputSize: 16, hiddenSizes: [10, 10], norm: norm, groups: 2)
        let (fused, plain) = try fusedPair({ try FeedForwardNetwork(spec: spec, seed: 13) }, sequentials: { [$0.layers] })
        let labels: [Int32] = [1, 2, 3, 4, 5, 6, 7]
        try stepBothExpectingIdentical(fused, plain, input: randomInput([7, 16], seed: 9), labels: labels, steps: 3)
        #expect(fusedFlags(fused.layers) == [true, true], "\(norm)")
        #expect(fusedFlags(plain.layers) == [false, false], "\(norm)")
        fused.eval(); plain.eval()
        try stepBothExpectingIdentical(fused, plain, input: randomInput([7, 16], seed: 10), labels: labels, steps: 1)
        // one sample: per-sample statistics need no batch
        try stepBothExpectingIdentical(fused, plain, input: randomInput([1, 16], seed: 11), labels: [3], steps: 1)
    }

    @Test("CNN with GroupNorm: GroupNorm → ReLU fused in the features, bit-identical to unfused")
    func cnnIdentical() throws {
        let arch = CNNArchitecture(imageSize: 10, channels: [4, 4], hiddenSize: 6, normalization: .groupNorm(groups: 2))
        let (fused, plain) = try fusedPair({ try CNN(arch, seed: 4) }, sequentials: { [$0.features, $0.classifier] })
        try stepBothExpectingIdentical(fused, plain, input: randomInput([5, 100], seed: 8), labels: [0, 1, 2, 3, 4], steps: 3)
        #expect(fusedFlags(fused.features) == [true, true])
        #expect(fusedFlags(plain.features) == [false, false])
    }

    @Test("forwardReLU / backwardReLU equal the layer then ReLU, (N, C) and (N, C, L), with and without affine")
    func layerPairIdentical() throws {
        for affine in [true, false] {
            let make: [() throws -> _GroupNormalization] = [
                { try GroupNorm(numGroups: 2, numChannels: 6, affine: affine) },
                { try LayerNorm(normalizedShape: [6], elementwiseAffine: affine) },
            ]
            for (k, build) in make.enumerated() {
                let fusedNorm = try build(), plainNorm = try build()
                if let w = fusedNorm.weight, let b = fusedNorm.bias {
                    for n in [fusedNorm, plainNorm] {
                        try n.weight!.value.assign(from: Tensor(shape: w.value.shape, scalars: [1.5, -0.5, 2, 0.25, 1, 0.75]))
                        try n.bias!.value.assign(from: Tensor(shape: b.value.shape, scalars: [0.1, 0.2, -0.3, 0, 1, -1]))
                    }
                }
                let relu = ReLU()
                for shape in k == 0 ? [[7, 6], [7, 6, 3]] : [[7, 6], [7, 2, 6]] {
                    let x = randomInput(shape, seed: 21), dy = randomInput(shape, seed: 22)
                    let yF = try fusedNorm.forwardReLU(x), yP = try relu.forward(try plainNorm.forward(x))
                    #expect(yF.scalars == yP.scalars)
                    #expect(yF.scalars.contains(0) && yF.scalars.contains { $0 > 0 })
                    #expect(fusedNorm.lastForwardFusedReLU && !plainNorm.lastForwardFusedReLU)
                    let dxF = try #require(try fusedNorm.backwardReLU(dy, needsInputGradient: true))
                    let dxP = try plainNorm.backward(try relu.backward(dy))
                    #expect(dxF.scalars == dxP.scalars, "\(k) \(shape) affine \(affine)")
                    if affine {
                        #expect(fusedNorm.weight!.grad.scalars == plainNorm.weight!.grad.scalars)
                        #expect(fusedNorm.bias!.grad.scalars == plainNorm.bias!.grad.scalars)
                    }
                    expectSameState(fusedNorm, plainNorm)
                }
            }
        }
    }

    @Test("InstanceNorm → ReLU is not fused; backwardReLU before a forward or with a wrong shape throws")
    func instanceNormAndErrors() throws {
        let seq = Sequential(try InstanceNorm1d(numFeatures: 3), ReLU())
        _ = try seq.forward(randomInput([2, 3, 5], seed: 1))
        #expect(fusedFlags(seq) == [false])
        let norm = try GroupNorm(numGroups: 2, numChannels: 4)
        #expect(throws: BatchNormKitError.self) { try norm.backwardReLU(randomInput([3, 4], seed: 1), needsInputGradient: true) }
        _ = try norm.forwardReLU(randomInput([3, 4], seed: 1))
        #expect(throws: BatchNormKitError.self) { try norm.backwardReLU(randomInput([3, 5], seed: 1), needsInputGradient: true) }
    }
}
