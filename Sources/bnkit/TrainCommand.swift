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
    @OptionGroup var distribution: DistributedOptions

    func validate() throws {
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        guard ranks == 1 || distribution.distributed == .none else {
            throw ValidationError("--ranks (threads) and --distributed mpi (processes) do not combine; use mpirun -np N")
        }
        guard recipe.options.batchSize >= 2 * ranks else {
            throw ValidationError("--batch-size must be at least 2 per rank (\(2 * ranks) for \(ranks) ranks)")
        }
    }

    func run() throws {
        let job = try distribution.join()
        let reports = (job?.rank ?? 0) == 0   // only rank 0 prints and writes files
        try reportingErrors(as: job) {
            try threads.apply()
            let (dataset, loadSeconds) = try data.load()
            let (train, test, standardization) = try input.prepare(dataset)
            let configuration = recipe.configuration()
            // ranks 1…: replicas on threads of their own, silent; rank 0 reports
            let groups = ranks > 1 ? try ThreadProcessGroup.make(size: ranks) : nil
            func replica(_ rank: Int) throws -> (SeedNetwork, Trainer) {
                let model = try SeedNetwork(inputSize: train.featureCount, classes: MNISTDataset.classCount,
                                            batchNorm: norm == .batchnorm, placement: placement.placement, seed: recipe.seed,
                                            processGroup: job ?? groups?[rank])
                return (model, try Trainer(model: model, configuration: configuration, processGroup: job ?? groups?[rank]))
            }
            let (model, trainer) = try replica(0)
            if let job { try job.agree(on: startupSettings(model: model, train: train, test: test, configuration: configuration)) }
            // before the replicas start: a failure here must not leave them waiting
            let metricsFile = try (reports ? metrics : nil).map { try MetricsFile(path: $0) }
            let workers = try (1..<max(ranks, 1)).map { rank in
                ReplicaThread(rank: rank, trainer: try replica(rank).1, data: train, epochs: configuration.epochs)
            }
            workers.forEach { $0.start() }
            defer { workers.forEach { $0.join() } }

            print("data   \(dataset.directory): \(train.count) train / \(test.count) test samples (read in \(String(format: "%.2f", loadSeconds)) s)")
            print("input  " + (standardization.map { "standardized: (x − \($0.mean)) / \($0.std), training-set statistics" } ?? "raw pixels in [0, 1]"))
            print("model  \(model.architecture)")
            print("recipe \(configuration.epochs) epochs, batch \(configuration.batchSize), SGD lr \(configuration.learningRate)"
                  + " momentum \(configuration.momentum) weight decay \(configuration.weightDecay), seed \(configuration.seed),"
                  + " \(threadCount()) thread\(threadCount() == 1 ? "" : "s")"
                  + (ranks > 1 ? " per rank, \(ranks) data-parallel ranks" : "")
                  + (job.map { " per rank, \($0.size) MPI rank\($0.size == 1 ? "" : "s")" } ?? ""))

            let progress = ProgressReporter(totalEpochs: configuration.epochs)
            let history: [EpochMetrics]
            do {
                history = try trainer.fit(train: train, test: test, onBatch: progress.batchDone) { epoch in
                    progress.epochDone(epoch)
                    metricsFile?.append(epoch)
                }
            } catch {
                groups?[0].abort(reason: "\(error)")   // wakes the thread replicas waiting for rank 0
                throw error
            }
            guard let last = history.last else { return }
            let trainingSeconds = history.reduce(0) { $0 + $1.seconds }
            print("final  test accuracy \(percent(last.testAccuracy)), test loss \(decimal(last.testLoss));"
                  + " training \(String(format: "%.2f", trainingSeconds)) s"
                  + " (\(String(format: "%.3f", trainingSeconds / Double(history.count))) s/epoch)")

            if let checkpoint, reports {
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
            do {
                for _ in 0..<epochs { _ = try trainer.trainEpoch(on: data) }
            } catch {
                // rank 0 reports this failure, naming this rank; another rank's failure is rank 0's to report too
                trainer.processGroup?.abort(reason: "\(error)")
            }
            finished.signal()
        }
        self.thread = thread
        thread.start()
    }

    func join() { finished.wait() }
}
