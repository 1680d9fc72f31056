import ArgumentParser
import BatchNormKit
import Foundation

/// `bnkit train`: the seed network on Fashion-MNIST with the lesson's recipe.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the seed network and report loss and accuracy after every epoch.",
        discussion: "The same seed gives the same numbers on the same machine and thread count."
    )

    @OptionGroup var recipe: RecipeOptions
    @OptionGroup var network: ModelOptions
    @OptionGroup var schedule: LRMilestoneOptions
    @Option(help: "Normalization in the hidden blocks.")
    var norm: NormChoice = .batchnorm
    @Option(help: "BatchNorm before or after each ReLU.")
    var placement: PlacementChoice = .before
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var input: InputOptions
    @Option(help: ArgumentHelp("Save the trained model here (safetensors, PyTorch state_dict names).", valueName: "FILE"))
    var checkpoint: String?
    @Option(help: ArgumentHelp("Write per-epoch metrics here: CSV, or JSON lines for .jsonl/.json.", valueName: "FILE"))
    var metrics: String?
    @Option(help: "Data-parallel replicas, one thread each (SyncBatchNorm, gradients summed every step); 1: none.")
    var ranks: Int = 1

    func validate() throws {
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        guard ranks == 1 || schedule.milestones.isEmpty else { throw ValidationError("--lr-milestones needs --ranks 1") }
        guard recipe.options.batchSize >= 2 * ranks else {
            throw ValidationError("--batch-size must be at least 2 per rank (\(2 * ranks) for \(ranks) ranks)")
        }
    }

    func run() throws {
        try reportingErrors {
            try threads.apply()
            let (dataset, loadSeconds) = try data.load()
            let (train, test, standardization) = try input.prepare(dataset)
            let configuration = recipe.configuration()
            // ranks 1…: replicas on threads of their own, silent; rank 0 reports
            let groups = ranks > 1 ? try ThreadProcessGroup.make(size: ranks) : nil
            var description = ""
            func replica(_ rank: Int) throws -> (Layer, Trainer) {
                let (model, text) = try network.makeNetwork(features: train.featureCount, rows: dataset.train.rows,
                                                            columns: dataset.train.columns, batchNorm: norm == .batchnorm,
                                                            placement: placement.placement, seed: recipe.seed, processGroup: groups?[rank])
                description = text
                return (model, try Trainer(model: model, configuration: configuration, processGroup: groups?[rank]))
            }
            let (model, trainer) = try replica(0)
            let workers = try (1..<max(ranks, 1)).map { rank in
                ReplicaThread(rank: rank, trainer: try replica(rank).1, data: train, epochs: configuration.epochs)
            }
            workers.forEach { $0.start() }
            defer { workers.forEach { $0.join() } }
            let metricsFile = try metrics.map { try MetricsFile(path: $0) }

            print("data   \(dataset.directory): \(train.count) train / \(test.count) test samples (read in \(String(format: "%.2f", loadSeconds)) s)")
            print("input  " + (standardization.map { "standardized: (x − \($0.mean)) / \($0.std), training-set statistics" } ?? "raw pixels in [0, 1]"))
            print("model  \(description)")
            print("recipe \(configuration.epochs) epochs, batch \(configuration.batchSize), SGD lr \(configuration.learningRate)"
                  + " momentum \(configuration.momentum) weight decay \(configuration.weightDecay)\(schedule.summary), seed \(configuration.seed),"
                  + " \(threadCount()) thread\(threadCount() == 1 ? "" : "s")"
                  + (ranks > 1 ? " per rank, \(ranks) data-parallel ranks" : ""))

            let progress = ProgressReporter(totalEpochs: configuration.epochs)
            let history = try trainer.fit(train: train, test: test, onBatch: progress.batchDone) { epoch in
                progress.epochDone(epoch)
                metricsFile?.append(epoch)
                schedule.apply(after: epoch.epoch, to: trainer.optimizer, base: configuration.learningRate)
            }
            guard let last = history.last else { return }
            let trainingSeconds = history.reduce(0) { $0 + $1.seconds }
            print("final  test accuracy \(percent(last.testAccuracy)), test loss \(decimal(last.testLoss));"
                  + " training \(String(format: "%.2f", trainingSeconds)) s"
                  + " (\(String(format: "%.3f", trainingSeconds / Double(history.count))) s/epoch)")

            if let checkpoint {
                try model.saveCheckpoint(to: checkpoint, metadata: (standardization?.metadata ?? [:]).merging([
                    "created_by": "bnkit train",
                    "epochs": "\(configuration.epochs)",
                    "batch_size": "\(configuration.batchSize)",
                    "learning_rate": "\(configuration.learningRate)",
                    "momentum": "\(configuration.momentum)",
                    "weight_decay": "\(configuration.weightDecay)",
                    "seed": "\(configuration.seed)",
                    "test_accuracy": "\(last.testAccuracy)",
                    "test_loss": "\(last.testLoss)",
                ]) { _, new in new })
                print("saved  \(checkpoint)")
            }
        }
    }
}

/// A data-parallel replica on a thread of its own: trains its epochs in step
/// with rank 0 (every step is an all-reduce), silently.
final class ReplicaThread: @unchecked Sendable {
    let rank: Int
    let trainer: Trainer
    let data: LabeledSamples
    let epochs: Int
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    init(rank: Int, trainer: Trainer, data: LabeledSamples, epochs: Int) {
        self.rank = rank; self.trainer = trainer; self.data = data; self.epochs = epochs
    }

    func start() {
        let thread = Thread { [self] in
            do { for _ in 0..<epochs { _ = try trainer.trainEpoch(on: data) } } catch { printError("rank \(rank): \(error)") }
            finished.signal()
        }
        self.thread = thread
        thread.start()
    }

    func join() { finished.wait() }
}
