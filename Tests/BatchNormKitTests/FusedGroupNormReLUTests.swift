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

/// Two networks built alike; `fused` keeps the default, `plain` runs every layer alone.
private func twins<N: Layer>(_ make: () throws -> N, sequentials: (N) -> [Sequential]) rethrows -> (fused: N, plain: N) {
    let fused = try make(), plain = try make()
    for s in sequentials(plain) { s.fusesBatchNormReLU = false }
    return (fused, plain)
}

/// Every state entry equal, under the same names.
private func expectSameEntries(_ a: Layer, _ b: Layer) {
    let ea = a.namedStateEntries(prefix: ""), eb = b.namedStateEntries(prefix: "")
    #expect(ea.map(\.name) == eb.map(\.name))
    for ((name, x), (_, y)) in zip(ea, eb) {
        switch (x, y) {
        case let (.parameter(p), .parameter(q)): #expect(p.value.scalars == q.value.scalars, "\(name)")
        case let (.buffer(p), .buffer(q)): #expect(p.scalars == q.scalars, "\(name)")
        case let (.batchCounter(p), .batchCounter(q)): #expect(p.numBatchesTracked == q.numBatchesTracked, "\(name)")
        default: Issue.record("\(name): entries of different kinds")
        }
    }
}

/// Forward, loss, backward and an SGD step on both, `steps` times; logits,
/// loss, input gradient, every parameter gradient and the state compared with ==.
private func trainBoth(_ fused: Layer, _ plain: Layer, input: Tensor, labels: [Int32], steps: Int) throws {
    let lossF = CrossEntropyLoss(), lossP = CrossEntropyLoss()
    let sgdF = try SGD(parameters: fused.parameters(), learningRate: 0.1, momentum: 0.9)
    let sgdP = try SGD(parameters: plain.parameters(), learningRate: 0.1, momentum: 0.9)
    for step in 0..<steps {
        sgdF.zeroGrad(); sgdP.zeroGrad()
        let yF = try fused.forward(input), yP = try plain.forward(input)
        #expect(yF.scalars == yP.scalars, "logits differ at step \(step)")
        let lF = try lossF.forward(logits: yF, labels: labels), lP = try lossP.forward(logits: yP, labels: labels)
        #expect(lF == lP, "loss differs at step \(step)")
        let dxF = try fused.backward(try lossF.backward(), needsInputGradient: true)
        let dxP = try plain.backward(try lossP.backward(), needsInputGradient: true)
        #expect(dxF?.scalars == dxP?.scalars, "input gradients differ at step \(step)")
        for ((name, pF), (_, pP)) in zip(fused.namedParameters(), plain.namedParameters()) {
            #expect(pF.grad.scalars == pP.grad.scalars, "\(name).grad differs at step \(step)")
        }
        sgdF.step(); sgdP.step()
    }
    expectSameEntries(fused, plain)
}

private func normals(_ shape: [Int], seed: UInt64) -> Tensor {
    var random = ReferenceRandom(seed: seed)
    return try! Tensor(shape: shape, scalars: random.normals(shape.reduce(1, *)))
}

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
        let (fused, plain) = try twins({ try FeedForwardNetwork(spec: spec, seed: 13) }, sequentials: { [$0.layers] })
        let labels: [Int32] = [1, 2, 3, 4, 5, 6, 7]
        try trainBoth(fused, plain, input: normals([7, 16], seed: 9), labels: labels, steps: 3)
        #expect(fusedFlags(fused.layers) == [true, true], "\(norm)")
        #expect(fusedFlags(plain.layers) == [false, false], "\(norm)")
        fused.eval(); plain.eval()
        try trainBoth(fused, plain, input: normals([7, 16], seed: 10), labels: labels, steps: 1)
        // one sample: per-sample statistics need no batch
        try trainBoth(fused, plain, input: normals([1, 16], seed: 11), labels: [3], steps: 1)
    }

    @Test("CNN with GroupNorm: GroupNorm → ReLU fused in the features, bit-identical to unfused")
    func cnnIdentical() throws {
        let arch = CNNArchitecture(imageSize: 10, channels: [4, 4], hiddenSize: 6, normalization: .groupNorm(groups: 2))
        let (fused, plain) = try twins({ try CNN(arch, seed: 4) }, sequentials: { [$0.features, $0.classifier] })
        try trainBoth(fused, plain, input: normals([5, 100], seed: 8), labels: [0, 1, 2, 3, 4], steps: 3)
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
                    let x = normals(shape, seed: 21), dy = normals(shape, seed: 22)
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
                    expectSameEntries(fusedNorm, plainNorm)
                }
            }
        }
    }

    @Test("InstanceNorm → ReLU is not fused; backwardReLU before a forward or with a wrong shape throws")
    func instanceNormAndErrors() throws {
        let seq = Sequential(try InstanceNorm1d(numFeatures: 3), ReLU())
        _ = try seq.forward(normals([2, 3, 5], seed: 1))
        #expect(fusedFlags(seq) == [false])
        let norm = try GroupNorm(numGroups: 2, numChannels: 4)
        #expect(throws: BatchNormKitError.self) { try norm.backwardReLU(normals([3, 4], seed: 1), needsInputGradient: true) }
        _ = try norm.forwardReLU(normals([3, 4], seed: 1))
        #expect(throws: BatchNormKitError.self) { try norm.backwardReLU(normals([3, 5], seed: 1), needsInputGradient: true) }
    }
}
