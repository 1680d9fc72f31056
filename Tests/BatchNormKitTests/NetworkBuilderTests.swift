import Testing
import Foundation
@testable import BatchNormKit

@Suite("NetworkBuilder: FeedForwardNetwork from a NetworkSpec")
struct NetworkBuilderTests {
    @Test("the default spec is the seed network: same state names, same initial weights")
    func seedEquivalence() throws {
        let built = try FeedForwardNetwork(spec: NetworkSpec(), seed: 3)
        let seed = try SeedNetwork(seed: 3)
        let a = built.namedStateEntries(prefix: ""), b = seed.namedStateEntries(prefix: "")
        #expect(a.map(\.name) == b.map(\.name))
        for (p, q) in zip(built.parameters(), seed.parameters()) { #expect(p.value.scalars == q.value.scalars) }
        for placement in NormPlacement.allCases {
            let x = Tensor.of([4, 784], (0..<(4 * 784)).map { Float(($0 * 37) % 101) / 101 })
            let n1 = try FeedForwardNetwork(spec: NetworkSpec(placement: placement), seed: 1)
            let n2 = try SeedNetwork(placement: placement, seed: 1)
            #expect(try n1.forward(x).scalars == n2.forward(x).scalars)
        }
    }

    @Test("layer order per norm, placement and dropout; init scale multiplies weights only")
    func layout() throws {
        let spec = NetworkSpec(inputSize: 6, hiddenSizes: [8, 8], classes: 3, norm: .groupnorm, placement: .after,
                               activation: .sigmoid, dropout: 0.25, groups: 4)
        let net = try FeedForwardNetwork(spec: spec, seed: 0)
        let kinds = net.layers.layers.map { "\(type(of: $0))" }
        #expect(kinds == ["Linear", "Sigmoid", "GroupNorm", "Dropout", "Linear", "Sigmoid", "GroupNorm", "Dropout", "Linear"])
        #expect(net.blocks.map(\.norm) == [2, 6] && net.blocks.map(\.activation) == [1, 5])
        let alpha = try FeedForwardNetwork(spec: NetworkSpec(inputSize: 6, hiddenSizes: [8], classes: 3, norm: .layernorm,
                                                             activation: .selu, alphaDropout: 0.1))
        #expect(alpha.layers.layers.map { "\(type(of: $0))" } == ["Linear", "LayerNorm", "SELU", "AlphaDropout", "Linear"])
        var scaled = spec; scaled.initScale = 10
        let big = try FeedForwardNetwork(spec: scaled, seed: 0)
        #expect(big.linears[0].weight.value.scalars == net.linears[0].weight.value.scalars.map { $0 * 10 })
        #expect(big.linears[0].bias!.value.scalars == net.linears[0].bias!.value.scalars)
    }

    @Test("bad specs throw typed errors")
    func validation() throws {
        for bad in [NetworkSpec(hiddenSizes: [0]), NetworkSpec(dropout: 1), NetworkSpec(dropout: 0.1, alphaDropout: 0.1),
                    NetworkSpec(initScale: 0), NetworkSpec(initScale: .nan), NetworkSpec(hiddenSizes: [12], norm: .groupnorm, groups: 5)] {
            #expect(throws: BatchNormKitError.self) { try FeedForwardNetwork(spec: bad) }
        }
    }

    @Test("backward agrees with finite differences through LayerNorm, Tanh and GELU blocks")
    func gradients() throws {
        for (norm, activation) in [(NormKind.layernorm, ActivationKind.tanh), (.groupnorm, .gelu), (.batchnorm, .sigmoid), (.none, .selu)] {
            let spec = NetworkSpec(inputSize: 5, hiddenSizes: [4, 4], classes: 3, norm: norm, activation: activation, groups: 2)
            let net = try FeedForwardNetwork(spec: spec, seed: 2)
            let x = Tensor.of([6, 5], (0..<30).map { sin(Float($0)) })
            let labels: [Int32] = [0, 1, 2, 0, 1, 2]
            let loss = CrossEntropyLoss()
            func value() throws -> Double { Double(try loss.forward(logits: try net.forward(x), labels: labels)) }
            net.parameters().forEach { $0.zeroGrad() }
            _ = try value()
            _ = try net.backward(try loss.backward(), needsInputGradient: false)
            let w = net.linears[0].weight
            let analytic = w.grad.scalars
            for i in [0, 7, 13, 19] {
                let saved = w.value[flat: i], h: Float = 1e-2
                w.value.withUnsafeMutableBufferPointer { $0[i] = saved + h }
                let plus = try value()
                w.value.withUnsafeMutableBufferPointer { $0[i] = saved - h }
                let minus = try value()
                w.value.withUnsafeMutableBufferPointer { $0[i] = saved }
                let numeric = (plus - minus) / Double(2 * h)
                // Float32 loss, h = 1e-2: central difference good to ~1e-4 absolute
                #expect(abs(numeric - Double(analytic[i])) < 2e-3 + 2e-2 * abs(numeric), "\(norm) \(activation) w[\(i)]: \(numeric) vs \(analytic[i])")
            }
        }
    }

    @Test("probes: pre-activation, activation output and layer inputs are the tensors of the last forward")
    func probes() throws {
        let net = try FeedForwardNetwork(spec: NetworkSpec(inputSize: 4, hiddenSizes: [6, 6], classes: 2, activation: .sigmoid))
        let x = Tensor.of([5, 4], (0..<20).map { 3 * sin(Float($0) * 1.7) })
        _ = try net.forward(x)
        #expect(net.preActivation(block: 0) == nil)
        net.probesEnabled = true
        _ = try net.forward(x)
        let pre = try #require(net.preActivation(block: 1)), post = try #require(net.activationOutput(block: 1))
        #expect(post.scalars == pre.scalars.map { Sigmoid.sigmoid($0) })
        #expect(net.layerInput(block: 0) === x)
        // BatchNorm before the activation: batch mean 0, variance v/(v + ε) ≈ 1 per feature (ε = 1e-5 matters for tiny v)
        let stats = ValueStatistics.columns(of: pre)
        #expect(stats.means.allSatisfy { abs($0) < 1e-5 } && stats.variances.allSatisfy { abs($0 - 1) < 0.05 })
        #expect(net.normInput(block: 1)?.shape == [5, 6])
        _ = try net.backward(Tensor.of([5, 2], [Float](repeating: 0.1, count: 10)), needsInputGradient: false)
        let norms = net.weightGradientNorms()
        #expect(norms.count == 3 && norms.allSatisfy { $0 > 0 && $0.isFinite })
    }

    @Test("checkpoints carry the spec: save, load as the same network, same outputs")
    func checkpoint() throws {
        let spec = NetworkSpec(inputSize: 7, hiddenSizes: [8, 4], classes: 3, norm: .layernorm, placement: .after,
                               activation: .leakyrelu, dropout: 0.2, initScale: 0.5)
        let net = try FeedForwardNetwork(spec: spec, seed: 5)
        let file = net.stateDict(metadata: ["note": "x"])
        #expect(file.metadata["architecture"] == "FeedForwardNetwork" && file.metadata["note"] == "x")
        #expect(try NetworkSpec(metadata: file.metadata, path: "f") == spec)
        let (loaded, description) = try loadCheckpointNetwork(stateDict: file, path: "f")
        #expect(description == "\(spec)")
        net.eval(); loaded.eval()
        let x = Tensor.of([2, 7], (0..<14).map { Float($0) * 0.1 })
        #expect(try net.forward(x).scalars == loaded.forward(x).scalars)
        // a seed-network file still loads as one
        let seedFile = try SeedNetwork(seed: 1).stateDict()
        #expect(try loadCheckpointNetwork(stateDict: seedFile).network is SeedNetwork)
        // malformed metadata is a typed error
        var bad = file; bad.metadata["activation"] = "swish"
        #expect(throws: BatchNormKitError.self) { try loadCheckpointNetwork(stateDict: bad, path: "f") }
        var huge = file; huge.metadata["hidden_sizes"] = "100000,100000"
        #expect(throws: BatchNormKitError.self) { try loadCheckpointNetwork(stateDict: huge, path: "f") }
    }
}
