import Foundation
import Testing
@testable import BatchNormKit
@testable import bnkit

// `bnkit train --checkpoint` / `--save-best`: the last epoch always, the best
// test accuracy only when it improves; unwritable paths fail before training.

@Suite("Checkpoint writer")
struct CheckpointWriterTests {
    func metrics(_ epoch: Int, _ accuracy: Double) -> EpochMetrics {
        EpochMetrics(epoch: epoch, trainLoss: 1, trainAccuracy: 0.5, testLoss: 1, testAccuracy: accuracy,
                     seconds: 1, samplesPerSecond: 1, evaluationSeconds: 0)
    }

    @Test("--checkpoint keeps the last epoch, --save-best the best one")
    func lastAndBest() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("CheckpointWriterTests-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let trainer = try Trainer(model: try SeedNetwork(inputSize: 4, hiddenSizes: [3], classes: 2),
                                  configuration: TrainingConfiguration(epochs: 3, batchSize: 2))
        var writer = CheckpointWriter(path: directory + "/last.safetensors", bestPath: directory + "/best.safetensors",
                                      metadata: ["seed": "0"], bestAccuracy: -1)
        try writer.checkWritable()
        for (epoch, accuracy) in [(1, 0.5), (2, 0.7), (3, 0.6)] { try writer.epochDone(trainer, metrics(epoch, accuracy)) }
        let last = try SafeTensorsFile(contentsOf: directory + "/last.safetensors")
        let best = try SafeTensorsFile(contentsOf: directory + "/best.safetensors")
        #expect(last.metadata["epoch"] == "3" && last.metadata["best_test_accuracy"] == "0.7")
        #expect(best.metadata["epoch"] == "2" && best.metadata["test_accuracy"] == "0.7")
        #expect(best.metadata["seed"] == "0" && best.tensors["trainer.epoch"] != nil)
    }

    @Test("a checkpoint in a missing directory is refused before training")
    func unwritable() {
        let writer = CheckpointWriter(path: "/nonexistent-\(UUID())/model.safetensors", bestPath: nil, metadata: [:], bestAccuracy: -1)
        #expect(throws: BatchNormKitError.self) { try writer.checkWritable() }
    }
}
