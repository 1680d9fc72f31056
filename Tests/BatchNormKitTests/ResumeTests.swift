import Foundation
import Testing
@testable import BatchNormKit

// Resume: 5 epochs, a training checkpoint written to disk, a fresh process's
// worth of objects resumed from it for 5 more — against 10 epochs in one go.
// Everything is deterministic on one machine and thread count, so the
// comparison is exact (==), weights, buffers and per-epoch metrics alike.

@Suite("Resume from a training checkpoint")
struct ResumeTests {
    /// (optimizer, scheduler per batch?) — SGD with momentum and no schedule
    /// (the seed recipe), Adam with a per-epoch cosine, AdamW with a per-batch one-cycle.
    static let recipes: [(OptimizerKind, String)] = [(.sgd, "none"), (.adam, "cosine"), (.adamW, "onecycle")]

    func makeTrainer(_ kind: OptimizerKind, _ schedule: String, train: LabeledSamples) throws -> Trainer {
        var configuration = TrainingConfiguration(epochs: 10, batchSize: 37, learningRate: kind == .sgd ? 0.1 : 0.01, seed: 3)
        configuration.optimizer = kind
        let model = try SeedNetwork(inputSize: 16, hiddenSizes: [12, 8], classes: 3, seed: 4)
        let trainer = try Trainer(model: model, configuration: configuration)
        let lr = Double(configuration.learningRate)
        switch schedule {
        case "cosine": trainer.scheduler = try CosineAnnealingLR(baseLearningRate: lr, tMax: 10)
        case "onecycle":
            trainer.scheduler = try OneCycleLR(maxLearningRate: lr, totalSteps: 10 * ((train.count + 36) / 37))
            trainer.schedulerInterval = .batch
        default: break
        }
        return trainer
    }

    @Test("5 + 5 epochs give exactly the numbers of 10", arguments: zip(recipes.map(\.0.rawValue), recipes.map(\.1)))
    func fivePlusFiveIsTen(optimizer: String, schedule: String) throws {
        let kind = try #require(OptimizerKind(rawValue: optimizer))
        let train = trainerTestBlobs(count: 150, seed: 5), test = trainerTestBlobs(count: 60, seed: 6)

        let whole = try makeTrainer(kind, schedule, train: train)
        let wholeHistory = try whole.fit(train: train, test: test)

        let first = try makeTrainer(kind, schedule, train: train)
        for _ in 0..<5 { _ = try first.trainEpoch(on: train) }
        let directory = makeTemporaryDirectory("ResumeTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/half.safetensors"
        try first.saveTrainingCheckpoint(to: path)

        let second = try makeTrainer(kind, schedule, train: train)
        try second.resume(from: path)
        #expect(second.epochsCompleted == 5)
        let rest = try second.fit(train: train, test: test)
        #expect(rest.map(\.epoch) == [6, 7, 8, 9, 10])
        #expect(rest.map(\.trainLoss) == wholeHistory.suffix(5).map(\.trainLoss))
        #expect(rest.map(\.testAccuracy) == wholeHistory.suffix(5).map(\.testAccuracy))
        let a = whole.model.stateDict().tensors, b = second.model.stateDict().tensors
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, tensor) in a { #expect(tensor.bytes == b[name]?.bytes, "\(name) differs") }
        #expect(second.stepsCompleted == whole.stepsCompleted)
    }

    @Test("the trainer applies a cycled momentum: SGD's μ and Adam's β₁ end at the schedule's last value")
    func trainerCyclesMomentum() throws {
        let train = trainerTestBlobs(count: 80, seed: 9), test = trainerTestBlobs(count: 30, seed: 10)
        for kind in [OptimizerKind.sgd, .adam] {
            var configuration = TrainingConfiguration(epochs: 2, batchSize: 16)
            configuration.optimizer = kind
            let trainer = try Trainer(model: try SeedNetwork(inputSize: 16, hiddenSizes: [8], classes: 3), configuration: configuration)
            let schedule = try OneCycleLR(maxLearningRate: 0.05, totalSteps: 2 * trainer.stepsPerEpoch(sampleCount: train.count))
            trainer.scheduler = schedule
            trainer.schedulerInterval = .batch
            try trainer.fit(train: train, test: test)
            let last = try #require(schedule.momentum(at: trainer.stepsCompleted - 1))
            let applied = kind == .sgd ? Double((trainer.optimizer as! SGD).momentum) : (trainer.optimizer as! Adam).betas.0
            #expect(abs(applied - last) <= 1e-7, "\(kind): \(applied) vs \(last)")
            #expect(abs(last - 0.95) < 0.01, "the cycle ends near max_momentum")
        }
    }

    @Test("a training checkpoint still loads as a plain model, and names its extras clearly")
    func trainingCheckpointLoadsAsModel() throws {
        let train = trainerTestBlobs(count: 80, seed: 7)
        let trainer = try makeTrainer(.adam, "none", train: train)
        _ = try trainer.trainEpoch(on: train)
        var file = trainer.model.stateDict()
        file.tensors.merge(trainer.trainingState()) { _, new in new }
        for name in ["trainer.epoch", "trainer.step", "trainer.data_order_rng_state", "trainer.data_order",
                     "optimizer.step", "optimizer.exp_avg.layers.0.weight", "optimizer.exp_avg_sq.layers.6.bias"] {
            #expect(file.tensors[name] != nil, "missing \(name)")
        }
        let loaded = try SeedNetwork(stateDict: file)
        #expect(loaded.architecture == (trainer.model as! SeedNetwork).architecture)
    }

    @Test("resuming with another optimizer or a broken trainer entry throws")
    func resumeRejectsMismatches() throws {
        let train = trainerTestBlobs(count: 80, seed: 7)
        let adam = try makeTrainer(.adam, "none", train: train)
        _ = try adam.trainEpoch(on: train)
        var file = adam.model.stateDict(metadata: ["optimizer": "adam"])
        file.tensors.merge(adam.trainingState()) { _, new in new }
        let sgd = try makeTrainer(.sgd, "none", train: train)
        #expect(throws: BatchNormKitError.self) { try sgd.resume(from: file) }
        file.tensors["trainer.data_order"] = try SafeTensor(int64s: [0, 0, 1], shape: [3])
        let other = try makeTrainer(.adam, "none", train: train)
        #expect(throws: BatchNormKitError.self) { try other.resume(from: file) }
        #expect(other.epochsCompleted == 0)
    }
}
