import Testing
import Foundation
import BatchNormReference
@testable import BatchNormKit

// The CNN against a PyTorch-trained model of the same module (Scripts/
// make_conv_fixtures.py, a smaller CNN(channels=(4, 8), hidden=16)): its
// state_dict loads by name, and logits, loss and every parameter gradient
// match. Logits are sums over ~1600 Float32 products after two BatchNorms:
// rtol 1e-4, atol 1e-4 absorbs the different summation orders (a wrong
// layer misses by O(1)).

@Suite("CNN")
struct CNNTests {
    @Test("a PyTorch state_dict (no metadata) loads, and reproduces eval and train logits, loss and gradients")
    func pyTorchModel() throws {
        let stateFile = try fixture("conv/cnn_state_dict.safetensors")
        #expect(stateFile.metadata["architecture"] == nil)
        #expect(CNNArchitecture.describes(stateFile))
        let model = try CNN(stateDict: stateFile)
        #expect(model.architecture == CNNArchitecture(channels: [4, 8], hiddenSize: 16))
        let f = try fixture("conv/cnn_eval.safetensors")
        let x = try f.tensor("x")
        let flat = Tensor.of([x.shape[0], 784], x.scalars)
        model.eval()
        for input in [x, flat] {
            let r = expectClose(try model.forward(input).scalars, try f.floats("logits_eval"), rtol: 1e-4, atol: 1e-4, "logits_eval")
            #expect(r.ok, "\(input.shape) \(r.message)")
        }
        model.train()
        let logits = try model.forward(flat)
        let train = expectClose(logits.scalars, try f.floats("logits_train"), rtol: 1e-4, atol: 1e-4, "logits_train")
        #expect(train.ok, "\(train.message)")
        let labels = try #require(f.tensors["labels"]).int64s.map(Int32.init)
        let criterion = CrossEntropyLoss()
        let loss = try criterion.forward(logits: logits, labels: labels)
        #expect(abs(Double(loss) - Double(try f.floats("loss_train")[0])) <= 1e-5)
        for p in model.parameters() { p.zeroGrad() }
        let dx = try model.backward(try criterion.backward(), needsInputGradient: true)
        #expect(dx?.shape == [8, 784])
        for (name, parameter) in model.namedParameters() {
            let want = try f.floats("grad." + name)
            let scale = want.map { abs(Double($0)) }.max() ?? 0
            // a convolution bias right before a training-mode BatchNorm has gradient exactly 0 (the batch
            // mean absorbs it): both sides give rounding noise ~1e-7, hence the floor 1e-6 of atol
            let r = expectClose(parameter.grad.scalars, want, rtol: 1e-3, atol: 1e-4 * max(scale, 1e-2), "grad." + name)
            #expect(r.ok, "\(r.message)")
        }
    }

    @Test("PyTorch state_dict names and shapes of the default network")
    func stateNames() throws {
        let model = try CNN()
        let layout = model.namedStateEntries(prefix: "").map { ($0.name, _checkpointLayout($0.entry).1) }
        let names = layout.map(\.0)
        #expect(names.prefix(7) == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                                    "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"])
        #expect(layout.first { $0.0 == "features.4.weight" }?.1 == [64, 32, 3, 3])
        #expect(layout.first { $0.0 == "classifier.0.weight" }?.1 == [128, 1600])
        #expect(layout.first { $0.0 == "classifier.3.weight" }?.1 == [10, 128])
        #expect(names.contains("classifier.1.running_var"))
        #expect(try CNN(CNNArchitecture(normalization: .none)).namedStateEntries(prefix: "").map(\.name)
                == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                    "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias"])
    }

    @Test("checkpoint round trip: the architecture travels in the metadata")
    func checkpoint() throws {
        let architecture = CNNArchitecture(imageSize: 12, channels: [3, 5], kernelSize: 3, hiddenSize: 7, classes: 4)
        let model = try CNN(architecture, seed: 3)
        let directory = makeTemporaryDirectory("cnn-checkpoint")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/cnn.safetensors"
        try model.saveCheckpoint(to: path, metadata: ["note": "test"])
        let file = try SafeTensorsFile(contentsOf: path)
        #expect(file.metadata["architecture"] == "CNN")
        #expect(file.metadata["channels"] == "3,5")
        #expect(file.metadata["note"] == "test")
        let loaded = try CNN(checkpoint: path)
        #expect(loaded.architecture == architecture)
        var rng = ReferenceRandom(seed: 2)
        let x = Tensor.of([3, 144], rng.normals(3 * 144))
        model.eval(); loaded.eval()
        #expect(try loaded.forward(x).scalars == (try model.forward(x).scalars))
        // bad metadata is a typed error, not a crash or a huge allocation
        var bad = file
        bad.metadata["channels"] = "3,x"
        #expect(throws: BatchNormKitError.self) { try CNN(stateDict: bad) }
        bad.metadata["channels"] = "3,5000000"
        #expect(throws: BatchNormKitError.self) { try CNN(stateDict: bad) }
        #expect(throws: BatchNormKitError.self) { try CNN(CNNArchitecture(imageSize: 5)) }
    }

    @Test("trains with Trainer on flattened images: the loss falls on a learnable toy task")
    func trains() throws {
        // 12×12 images whose class is which quadrant is bright
        var rng = ReferenceRandom(seed: 12)
        var features: [Float] = [], labels: [Int32] = []
        for i in 0..<96 {
            let label = i % 4
            for r in 0..<12 { for c in 0..<12 {
                let bright = (r < 6) == (label < 2) && (c < 6) == (label % 2 == 0)
                features.append(Float((bright ? 1.0 : 0.0) + 0.3 * rng.normal()))
            } }
            labels.append(Int32(label))
        }
        let data = try LabeledSamples(features: features, labels: labels, featureCount: 144)
        let model = try CNN(CNNArchitecture(imageSize: 12, channels: [4, 8], hiddenSize: 16, classes: 4), seed: 1)
        let trainer = try Trainer(model: model, configuration: TrainingConfiguration(epochs: 4, batchSize: 16, learningRate: 0.05))
        let history = try trainer.fit(train: data, test: data)
        #expect(history.allSatisfy { $0.trainLoss.isFinite && $0.testLoss.isFinite })
        #expect(history.last!.trainLoss < 0.5 * history.first!.trainLoss, "\(history.map(\.trainLoss))")
        #expect(history.last!.testAccuracy > 0.9)
    }

    @Test("folding BatchNorm into the convolutions and the Linear: eval logits within 1e-5, same predictions")
    func folding() throws {
        let model = try CNN(CNNArchitecture(channels: [6, 8], hiddenSize: 12), seed: 5)
        // non-trivial running statistics, γ and β: a few training forwards and random affine parameters
        var rng = ReferenceRandom(seed: 7)
        for case let norm as _BatchNorm in model.features.layers + model.classifier.layers {
            norm.weight!.value.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float(0.5 + rng.unit()) } }
            norm.bias!.value.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = Float(rng.normal()) } }
        }
        model.train()
        for _ in 0..<3 { _ = try model.forward(.of([16, 784], rng.normals(16 * 784, scale: 2).map { $0 + 0.5 })) }
        let x = Tensor.of([10, 784], rng.normals(10 * 784, scale: 2).map { $0 + 0.5 })
        model.eval()
        let want = try model.forward(x).scalars
        let folded = try model.foldingBatchNorm()
        #expect(!folded.architecture.batchNorm && !folded.isTraining)
        #expect(folded.namedStateEntries(prefix: "").count == 8)
        let got = try folded.forward(x).scalars
        // the folded weights are rounded once from Double; what remains is Float32 summation order
        for i in want.indices {
            #expect(abs(got[i] - want[i]) <= 1e-5 * max(1, abs(want[i])), "logit \(i): folded \(got[i]) vs \(want[i])")
        }
        func predictions(_ logits: [Float]) -> [Int] {
            (0..<10).map { row in (0..<10).max { logits[row * 10 + $0] < logits[row * 10 + $1] }! }
        }
        #expect(predictions(got) == predictions(want))
        // the source network is untouched and a later training step does not reach the copy
        model.train()
        _ = try model.forward(x)
        #expect(try folded.forward(x).scalars == got)
        // a BatchNorm2d without running statistics has nothing to fold: typed error
        #expect(throws: BatchNormKitError.self) { try _NormAffine(try BatchNorm2d(numFeatures: 2, trackRunningStats: false), index: 1) }
    }

    @Test("data-parallel: 2 ranks with SyncBatchNorm follow single-process training of the CNN")
    func dataParallel() throws {
        let architecture = CNNArchitecture(imageSize: 10, channels: [2, 3], kernelSize: 3, hiddenSize: 4, classes: 3)
        var rng = ReferenceRandom(seed: 31)
        let data = try LabeledSamples(features: rng.normals(46 * 100), labels: (0..<46).map { Int32($0 % 3) }, featureCount: 100)
        let configuration = TrainingConfiguration(epochs: 1, batchSize: 12, learningRate: 0.05, momentum: 0.9, seed: 2)
        let single = try CNN(architecture, seed: 6)
        let want = try Trainer(model: single, configuration: configuration).trainEpoch(on: data)
        let groups = try ThreadProcessGroup.make(size: 2)
        let results = RankTraining(2)
        try onRanks(2) { rank in
            let model = try CNN(architecture, seed: 6, processGroup: groups[rank])
            let epoch = try Trainer(model: model, configuration: configuration, processGroup: groups[rank]).trainEpoch(on: data)
            results.set(rank, model.parameters().map(\.value.scalars), [epoch])
        }
        let reference = single.parameters().map(\.value.scalars)
        for rank in 0..<2 {
            for (index, values) in results.parameters[rank].enumerated() {
                // as SyncBatchNormTests: Float32 sums over the ranks' shares in another order
                let r = compareToReference(values, reference[index], rtol: 1e-4, atol: 1e-5)
                #expect(r.ok, "rank \(rank), parameter \(index): \(r.worst)")
            }
            #expect(abs(results.epochs[rank][0].loss - want.loss) <= 1e-5 * max(1, want.loss))
        }
    }

    @Test("GroupNorm and InstanceNorm variants: batch-independent in training mode, checkpoints, not foldable",
          arguments: [CNNNormalization.groupNorm(groups: 2), .instanceNorm])
    func perSampleNormalization(normalization: CNNNormalization) throws {
        let architecture = CNNArchitecture(imageSize: 12, channels: [4, 6], hiddenSize: 5, classes: 3, normalization: normalization)
        let model = try CNN(architecture, seed: 8)
        #expect(model.namedStateEntries(prefix: "").map(\.name)
                == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                    "features.4.weight", "features.4.bias", "features.5.weight", "features.5.bias",
                    "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias"])
        // training mode: each sample's logits are its own, whatever else is in the batch
        var rng = ReferenceRandom(seed: 9)
        let x = rng.normals(4 * 144)
        model.train()
        let batch = try model.forward(.of([4, 144], x)).scalars
        for sample in 0..<4 {
            let alone = try model.forward(.of([1, 144], Array(x[(sample * 144)..<((sample + 1) * 144)]))).scalars
            let r = expectClose(alone, Array(batch[(sample * 3)..<((sample + 1) * 3)]), rtol: 1e-5, atol: 1e-6, "sample \(sample)")
            #expect(r.ok, "\(r.message)")
        }
        let file = model.stateDict()
        #expect(file.metadata["norm"] == (normalization == .instanceNorm ? "instancenorm" : "groupnorm"))
        let loaded = try CNN(stateDict: file)
        #expect(loaded.architecture == architecture)
        #expect(try loaded.forward(.of([4, 144], x)).scalars == batch)
        #expect(throws: BatchNormKitError.self) { try model.foldingBatchNorm() }
        // without metadata the names cannot tell GroupNorm from InstanceNorm: a typed error, not a guess
        var bare = file
        bare.metadata = [:]
        #expect(throws: BatchNormKitError.self) { try CNN(stateDict: bare) }
    }
}

