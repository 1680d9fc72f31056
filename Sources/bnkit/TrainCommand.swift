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
    @OptionGroup var optimization: OptimizerOptions
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
    @OptionGroup var resume: ResumeOptions

    func validate() throws {
        try optimization.validate(epochs: recipe.options.epochs)
        if resume.resume != nil && ranks > 1 { throw ValidationError("--resume trains on one rank only (no --ranks)") }
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        guard recipe.options.batchSize >= 2 * ranks else {
            throw ValidationError("--batch-size must be at least 2 per rank (\(2 * ranks) for \(ranks) ranks)")
        }
    }

    func run() throws {
        try reportingErrors {
            try threads.apply()
            let (dataset, loadSeconds) = try data.load()
            let (train, test, standardization) = try input.prepare(dataset)
            var configuration = recipe.configuration()
            configuration.optimizer = optimization.optimizer.kind
            // ranks 1…: replicas on threads of their own, silent; rank 0 reports
            let groups = ranks > 1 ? try ThreadProcessGroup.make(size: ranks) : nil
            func replica(_ rank: Int) throws -> (SeedNetwork, Trainer) {
                let model = try SeedNetwork(inputSize: train.featureCount, classes: MNISTDataset.classCount,
                                            batchNorm: norm == .batchnorm, placement: placement.placement, seed: recipe.seed,
                                            processGroup: groups?[rank])
                let trainer = try Trainer(model: model, configuration: configuration, processGroup: groups?[rank])
                try optimization.configure(trainer, epochs: configuration.epochs, sampleCount: train.count)
                return (model, trainer)
            }
            let (model, trainer) = try replica(0)
            var checkpoints = CheckpointWriter(path: checkpoint, bestPath: resume.saveBest, metadata: [:], bestAccuracy: -1)
            checkpoints.metadata = (standardization?.metadata ?? [:]).merging([
                "created_by": "bnkit train",
                "epochs": "\(configuration.epochs)",
                "batch_size": "\(configuration.batchSize)",
                "learning_rate": "\(configuration.learningRate)",
                "momentum": "\(configuration.momentum)",
                "weight_decay": "\(configuration.weightDecay)",
                "seed": "\(configuration.seed)",
                "schedule": optimization.description,
            ]) { _, new in new }
            try checkpoints.checkWritable()
            checkpoints.bestAccuracy = try resume.restore(trainer)
            let workers = try (1..<max(ranks, 1)).map { rank in
                ReplicaThread(rank: rank, trainer: try replica(rank).1, data: train, epochs: configuration.epochs)
            }
            workers.forEach { $0.start() }
            defer { workers.forEach { $0.join() } }
            let metricsFile = try metrics.map { try MetricsFile(path: $0) }

            print("data   \(dataset.directory): \(train.count) train / \(test.count) test samples (read in \(String(format: "%.2f", loadSeconds)) s)")
            print("input  " + (standardization.map { "standardized: (x − \($0.mean)) / \($0.std), training-set statistics" } ?? "raw pixels in [0, 1]"))
            print("model  \(model.architecture)")
            print("recipe \(configuration.epochs) epochs, batch \(configuration.batchSize), \(optimization.description), lr \(configuration.learningRate)"
                  + (configuration.optimizer == .sgd ? " momentum \(configuration.momentum)" : "")
                  + " weight decay \(configuration.weightDecay), seed \(configuration.seed),"
                  + " \(threadCount()) thread\(threadCount() == 1 ? "" : "s")"
                  + (ranks > 1 ? " per rank, \(ranks) data-parallel ranks" : ""))

            var checkpointError: Error?
            let progress = ProgressReporter(totalEpochs: configuration.epochs)
            let history = try trainer.fit(train: train, test: test, onBatch: progress.batchDone) { epoch in
                progress.epochDone(epoch)
                metricsFile?.append(epoch)
                do { try checkpoints.epochDone(trainer, epoch) } catch { checkpointError = checkpointError ?? error }
            }
            if let checkpointError { throw checkpointError }
            guard let last = history.last else { return }
            let trainingSeconds = history.reduce(0) { $0 + $1.seconds }
            print("final  test accuracy \(percent(last.testAccuracy)), test loss \(decimal(last.testLoss));"
                  + " training \(String(format: "%.2f", trainingSeconds)) s"
                  + " (\(String(format: "%.3f", trainingSeconds / Double(history.count))) s/epoch)")

            for case let path? in [checkpoint, resume.saveBest] { print("saved  \(path)") }
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
