import ArgumentParser
import BatchNormKit
import Foundation

/// `--resume FILE` and `--save-best FILE` of `bnkit train`.
struct ResumeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("""
        Continue the run saved in this checkpoint (a --checkpoint of bnkit train, rewritten after every epoch): \
        weights, optimizer buffers, epoch, step and data order, so 5 + 5 epochs give the numbers of 10. \
        Give the same options as the first run, with --epochs the total.
        """, valueName: "FILE"))
    var resume: String?
    @Option(help: ArgumentHelp("Also keep the checkpoint of the epoch with the best test accuracy here.", valueName: "FILE"))
    var saveBest: String?

    /// Restores `trainer` when resuming; returns the best test accuracy recorded so far.
    func restore(_ trainer: Trainer) throws -> Double {
        guard let resume else { return -1 }
        let file = try SafeTensorsFile(contentsOf: resume)
        try trainer.resume(from: file, path: resume)
        print("resume \(resume): \(trainer.epochsCompleted) epoch\(trainer.epochsCompleted == 1 ? "" : "s") done")
        return file.metadata["best_test_accuracy"].flatMap(Double.init) ?? -1
    }
}

/// Writes `trainer`'s training checkpoints: after every epoch to `--checkpoint`,
/// and to `--save-best` when the epoch's test accuracy is the best so far.
struct CheckpointWriter {
    let path: String?
    let bestPath: String?
    var metadata: [String: String]
    var bestAccuracy: Double
    /// The epoch whose state `path` holds from this run (nil: none written yet).
    var savedEpoch: Int?

    /// Fails before training when a path's directory is missing or not writable.
    func checkWritable() throws {
        for case let target? in [path, bestPath] {
            let directory = (target as NSString).deletingLastPathComponent
            guard FileManager.default.isWritableFile(atPath: directory.isEmpty ? "." : directory) else {
                throw BatchNormKitError.fileUnreadable(path: target, reason: "the directory does not exist or is not writable")
            }
        }
    }

    mutating func epochDone(_ trainer: Trainer, _ metrics: EpochMetrics) throws {
        let isBest = metrics.testAccuracy > bestAccuracy
        if isBest { bestAccuracy = metrics.testAccuracy }
        let entries = metadata.merging([
            "epoch": "\(metrics.epoch)",
            "test_accuracy": "\(metrics.testAccuracy)",
            "test_loss": "\(metrics.testLoss)",
            "best_test_accuracy": "\(bestAccuracy)",
        ]) { _, new in new }
        if let path {
            try trainer.saveTrainingCheckpoint(to: path, metadata: entries)
            savedEpoch = metrics.epoch
        }
        if isBest, let bestPath { try trainer.saveTrainingCheckpoint(to: bestPath, metadata: entries) }
    }
}
