import Foundation
import Testing
@testable import BatchNormKit

// The training loop on small generated data: it learns, it is deterministic
// for a seed, it handles the final partial batch like PyTorch's DataLoader
// (dropping a final batch of one), and evaluation reports per-class figures.

// MARK: - Generated data

/// `count` samples of `classes` Gaussian blobs in `features` dimensions:
/// class c has mean 2 in coordinates c, c + classes, … and 0 elsewhere, unit
/// noise — separable enough for > 95% accuracy.
func trainerTestBlobs(count: Int, features: Int = 16, classes: Int = 3, seed: UInt64) -> LabeledSamples {
    var generator = SplitMix64(seed: seed)
    var values: [Float] = [], labels: [Int32] = []
    values.reserveCapacity(count * features)
    for i in 0..<count {
        let label = i % classes
        labels.append(Int32(label))
        for j in 0..<features {
            // Box–Muller from two uniforms in (0, 1].
            let u = 1 - Double.random(in: 0..<1, using: &generator), v = Double.random(in: 0..<1, using: &generator)
            let noise = (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
            values.append(Float((j % classes == label ? 2 : 0) + noise))
        }
    }
    return try! LabeledSamples(features: values, labels: labels, featureCount: features)
}

/// The blobs' network: features → 32 → 16 → classes, BatchNorm before ReLU.
private func blobNetwork(seed: UInt64 = 0, batchNorm: Bool = true) throws -> SeedNetwork {
    try SeedNetwork(inputSize: 16, hiddenSizes: [32, 16], classes: 3, batchNorm: batchNorm, seed: seed)
}

@Suite("Trainer")
struct TrainerTests {
    // MARK: - Learning

    @Test("learns separable blobs, with and without BatchNorm", arguments: [true, false])
    func learnsBlobs(batchNorm: Bool) throws {
        let train = trainerTestBlobs(count: 600, seed: 1), test = trainerTestBlobs(count: 300, seed: 2)
        let trainer = try Trainer(model: blobNetwork(batchNorm: batchNorm),
                                  configuration: TrainingConfiguration(epochs: 5, batchSize: 32))
        var epochsSeen: [Int] = []
        let history = try trainer.fit(train: train, test: test, onEpoch: { epochsSeen.append($0.epoch) })
        #expect(history.map(\.epoch) == [1, 2, 3, 4, 5])
        #expect(epochsSeen == [1, 2, 3, 4, 5])
        let last = try #require(history.last)
        #expect(last.testAccuracy >= 0.95, "test accuracy \(last.testAccuracy)")
        #expect(last.trainLoss < history[0].trainLoss)
        #expect(last.seconds > 0 && last.samplesPerSecond > 0)
        #expect(trainer.model.isTraining, "evaluation restores training mode")
    }

    @Test("learns from generated IDX files read by MNISTDataset")
    func learnsFromIDXFiles() throws {
        let directory = makeTemporaryDirectory("TrainerTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // 28×28 images: class c lights rows 2c…2c+1, plus noise.
        var generator = SplitMix64(seed: 3)
        func write(_ prefix: String, count: Int) throws {
            var pixels: [UInt8] = [], labels: [UInt8] = []
            for i in 0..<count {
                let label = i % 10
                labels.append(UInt8(label))
                for row in 0..<28 {
                    for _ in 0..<28 {
                        let base = row / 2 == label ? 200 : 20
                        pixels.append(UInt8(base + Int.random(in: 0..<50, using: &generator)))
                    }
                }
            }
            try IDXFile.write(dimensions: [count, 28, 28], bytes: pixels, to: "\(directory)/\(prefix)-images-idx3-ubyte.gz", compressed: true)
            try IDXFile.write(dimensions: [count], bytes: labels, to: "\(directory)/\(prefix)-labels-idx1-ubyte.gz", compressed: true)
        }
        try write("train", count: 300)
        try write("t10k", count: 100)
        let data = try MNISTDataset(directory: directory)
        let trainer = try Trainer(model: SeedNetwork(), configuration: TrainingConfiguration(epochs: 3, batchSize: 32))
        let history = try trainer.fit(train: LabeledSamples(data.train), test: LabeledSamples(data.test))
        #expect((history.last?.testAccuracy ?? 0) >= 0.95)
    }

    // MARK: - Determinism

    @Test("the same seed gives the same metrics and weights; another seed does not")
    func deterministic() throws {
        let train = trainerTestBlobs(count: 200, seed: 1), test = trainerTestBlobs(count: 60, seed: 2)
        func run(seed: UInt64) throws -> (metrics: [EpochMetrics], weights: [[Float]]) {
            let model = try blobNetwork(seed: seed)
            let history = try Trainer(model: model, configuration: TrainingConfiguration(epochs: 2, batchSize: 16, seed: seed))
                .fit(train: train, test: test)
            return (history, model.parameters().map(\.value.scalars))
        }
        let a = try run(seed: 4), b = try run(seed: 4), c = try run(seed: 5)
        #expect(a.weights == b.weights)
        #expect(a.metrics.map(\.trainLoss) == b.metrics.map(\.trainLoss))
        #expect(a.metrics.map(\.testLoss) == b.metrics.map(\.testLoss))
        #expect(a.metrics.map(\.testAccuracy) == b.metrics.map(\.testAccuracy))
        #expect(a.weights != c.weights)
    }

    // MARK: - Batching

    @Test("a final batch of one sample is dropped, not fed to BatchNorm")
    func finalBatchOfOne() throws {
        let data = trainerTestBlobs(count: 65, seed: 6)
        let model = try blobNetwork()
        let trainer = try Trainer(model: model, configuration: TrainingConfiguration(batchSize: 32))
        var steps: [BatchProgress] = []
        let pass = try trainer.trainEpoch(on: data) { steps.append($0) }
        #expect(pass.samples == 64)
        #expect(steps.map(\.batch) == [1, 2] && steps.allSatisfy { $0.batchCount == 2 && $0.sampleCount == 64 })
        #expect(steps.last?.samplesDone == 64)
        for case let norm as BatchNorm1d in model.layers.layers { #expect(norm.numBatchesTracked == 2) }
    }

    @Test("a final partial batch of two or more is kept (drop_last=False)")
    func finalPartialBatch() throws {
        let data = trainerTestBlobs(count: 70, seed: 6)
        let model = try blobNetwork()
        let trainer = try Trainer(model: model, configuration: TrainingConfiguration(batchSize: 32))
        var sizes: [Int] = []
        var done = 0
        for _ in 0..<2 {   // twice: the second epoch reuses both batch buffers
            let pass = try trainer.trainEpoch(on: data) { sizes.append($0.samplesDone - done); done = $0.samplesDone }
            done = 0
            #expect(pass.samples == 70)
        }
        #expect(sizes == [32, 32, 6, 32, 32, 6])
        #expect(trainer.epochsCompleted == 2)
        for case let norm as BatchNorm1d in model.layers.layers { #expect(norm.numBatchesTracked == 6) }
    }

    @Test("batch size 1 and a single-sample training set are rejected with a typed error")
    func rejectsSingletons() throws {
        #expect(throws: BatchNormKitError.self) {
            _ = try Trainer(model: blobNetwork(), configuration: TrainingConfiguration(batchSize: 1))
        }
        let trainer = try Trainer(model: blobNetwork())
        #expect(throws: BatchNormKitError.self) { _ = try trainer.trainEpoch(on: trainerTestBlobs(count: 1, seed: 1)) }
    }

    // MARK: - Evaluation

    @Test("evaluation counts per class, restores the mode and does not depend on the batch size")
    func evaluation() throws {
        let train = trainerTestBlobs(count: 300, seed: 1), test = trainerTestBlobs(count: 100, seed: 2)
        let trainer = try Trainer(model: blobNetwork(), configuration: TrainingConfiguration(epochs: 2, batchSize: 32))
        try trainer.fit(train: train, test: test)
        let whole = try trainer.model.evaluate(on: test, batchSize: 1000)
        let pieces = try trainer.model.evaluate(on: test, batchSize: 7)
        #expect(whole.countPerClass == [34, 33, 33])
        #expect(whole.sampleCount == 100)
        #expect(whole.correctPerClass == pieces.correctPerClass)
        #expect(abs(whole.loss - pieces.loss) < 1e-6)
        #expect(abs(whole.accuracy - Double(whole.correctPerClass.reduce(0, +)) / 100) < 1e-12)
        #expect(whole.classAccuracies.count == 3 && whole.classAccuracies.allSatisfy { $0 != nil })
        #expect(trainer.model.isTraining)
    }
}
