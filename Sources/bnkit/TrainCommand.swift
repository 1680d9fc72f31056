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
    @OptionGroup var modelChoice: ModelOptions
    @OptionGroup var milestones: LRMilestoneOptions
    @Option(help: "Normalization in the hidden blocks.")
    var norm: NetworkNormChoice = .batchnorm
    @Option(help: "BatchNorm before or after each ReLU.")
    var placement: PlacementChoice = .before
    @OptionGroup var network: NetworkOptions
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
    @OptionGroup var resume: ResumeOptions

    /// The most thread ranks one process starts (replicas are whole models).
    static let maxThreadRanks = 256

    func validate() throws {
        try optimization.validate(epochs: recipe.options.epochs)
        if resume.resume != nil && ranks > 1 { throw ValidationError("--resume trains on one rank only (no --ranks)") }
        if modelChoice.model == .cnn, network.needsBuilder(norm: norm) {
            throw ValidationError("--model cnn takes --norm batchnorm|none; --depth, --width, --activation, dropout and --init-scale are for the mlp")
        }
        guard ranks >= 1 else { throw ValidationError("--ranks must be at least 1, got \(ranks)") }
        // each rank is a thread with its own model: the count must not be the input's to inflate
        guard ranks <= Self.maxThreadRanks else {
            throw ValidationError("--ranks must be at most \(Self.maxThreadRanks) (each rank is a thread with its own replica), got \(ranks)")
        }
        guard ranks == 1 || milestones.milestones.isEmpty else { throw ValidationError("--lr-milestones needs --ranks 1") }
        guard milestones.milestones.isEmpty || (optimization.schedule == .none && optimization.warmupEpochs == 0) else {
            throw ValidationError("--lr-milestones is a schedule of its own: do not combine it with --schedule or --warmup-epochs")
        }
        guard ranks == 1 || distribution.distributed == .none else {
            throw ValidationError("--ranks (threads) and --distributed mpi (processes) do not combine; use mpirun -np N")
        }
        guard ranks <= recipe.options.batchSize / 2 else {   // not 2 * ranks: that can overflow
            throw ValidationError("--batch-size must be at least 2 per rank (\(ranks) ranks)")
        }
    }

    func run() throws {
        let job = try distribution.join()
        let reports = (job?.rank ?? 0) == 0   // only rank 0 prints and writes files
        try reportingErrors(as: job) {
            // Outputs first: a bad path fails now, not after the last epoch.
            if reports {
                try checkOutputs([(checkpoint, "checkpoint", .atomicReplace), (resume.saveBest, "best checkpoint", .atomicReplace),
                                  (metrics, "metrics file", .stream)])
            }
            try threads.apply()
            let (dataset, loadSeconds) = try data.load()
            let (train, test, standardization) = try input.prepare(dataset)
            var configuration = recipe.configuration()
            configuration.batchSize = try effectiveBatchSize(configuration.batchSize, samples: train.count, ranks: ranks)
            configuration.optimizer = optimization.optimizer.kind
            // ranks 1…: replicas on threads of their own, silent; rank 0 reports
            let groups = ranks > 1 ? try ThreadProcessGroup.make(size: ranks) : nil
            func replica(_ rank: Int) throws -> (Layer, Trainer) {
                let group: ProcessGroup? = job ?? groups?[rank]
                let model = modelChoice.model == .cnn
                    ? try modelChoice.makeNetwork(features: train.featureCount, rows: dataset.train.rows, columns: dataset.train.columns,
                                                  batchNorm: norm == .batchnorm, placement: placement.placement, seed: recipe.seed,
                                                  processGroup: group).0
                    : try network.makeModel(inputSize: train.featureCount, norm: norm, placement: placement.placement,
                                            seed: recipe.seed, processGroup: group)
                let trainer = try Trainer(model: model, configuration: configuration, processGroup: group)
                try optimization.configure(trainer, epochs: configuration.epochs, sampleCount: train.count)
                return (model, trainer)
            }
            let (model, trainer) = try replica(0)
            if let job { try job.agree(on: startupSettings(model: model, train: train, test: test, configuration: configuration)) }
            var checkpoints = CheckpointWriter(path: reports ? checkpoint : nil, bestPath: reports ? resume.saveBest : nil,
                                               metadata: [:], bestAccuracy: -1)
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
            checkpoints.bestAccuracy = try resume.restore(trainer)
            // Opened before any replica thread starts, so its failure cannot strand one.
            let metricsFile = try (reports ? metrics : nil).map { try MetricsFile(path: $0) }
            let workers = try (1..<max(ranks, 1)).map { rank in
                ReplicaThread(rank: rank, trainer: try replica(rank).1, data: train, epochs: configuration.epochs)
            }
            workers.forEach { $0.start() }
            defer { workers.forEach { $0.join() } }

            print("data   \(dataset.directory): \(train.count) train / \(test.count) test samples (read in \(String(format: "%.2f", loadSeconds)) s)")
            print("input  " + (standardization.map { "standardized: (x − \($0.mean)) / \($0.std), training-set statistics" } ?? "raw pixels in [0, 1]"))
            print("model  \(describeModel(model))")
            print("recipe \(configuration.epochs) epochs, batch \(configuration.batchSize), \(optimization.description), lr \(configuration.learningRate)"
                  + (configuration.optimizer == .sgd ? " momentum \(configuration.momentum)" : "")
                  + " weight decay \(configuration.weightDecay)\(milestones.summary), seed \(configuration.seed),"
                  + " \(threadCount()) thread\(threadCount() == 1 ? "" : "s")"
                  + (ranks > 1 ? " per rank, \(ranks) data-parallel ranks" : "")
                  + (job.map { " per rank, \($0.size) MPI rank\($0.size == 1 ? "" : "s")" } ?? ""))

            var checkpointError: Error?
            let progress = ProgressReporter(totalEpochs: configuration.epochs)
            let history: [EpochMetrics]
            do {
                history = try trainer.fit(train: train, test: test, onBatch: progress.batchDone) { epoch in
                    progress.epochDone(epoch)
                    try metricsFile?.append(epoch)
                    if !milestones.milestones.isEmpty {
                        milestones.apply(after: epoch.epoch, to: trainer.optimizer, base: configuration.learningRate)
                    }
                    do { try checkpoints.epochDone(trainer, epoch) } catch { checkpointError = checkpointError ?? error }
                }
            } catch {
                groups?[0].abort(reason: "\(error)")   // wakes the thread replicas waiting for rank 0
                if case BatchNormKitError.diverged = error, let checkpoint, reports {
                    printError(checkpoints.savedEpoch.map { "bnkit: \(checkpoint) holds epoch \($0), the last one with a finite loss" }
                               ?? "bnkit: no checkpoint written to \(checkpoint)")
                }
                throw error
            }
            if let checkpointError { throw checkpointError }
            guard let last = history.last else { return }
            let trainingSeconds = history.reduce(0) { $0 + $1.seconds }
            print("final  test accuracy \(percent(last.testAccuracy)), test loss \(decimal(last.testLoss));"
                  + " training \(String(format: "%.2f", trainingSeconds)) s"
                  + " (\(String(format: "%.3f", trainingSeconds / Double(history.count))) s/epoch)")

            if reports { for case let path? in [checkpoint, resume.saveBest] { print("saved  \(path)") } }
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

    init(rank: Int, trainer: Trainer, data: LabeledSamples, epochs: Int) {
        self.rank = rank; self.trainer = trainer; self.data = data; self.epochs = epochs
    }

    /// The thread is not kept: holding it would close a retain cycle
    /// (self → thread → closure → self) that leaked every replica's model.
    func start() {
        Thread { [self] in
            do {
                for _ in 0..<epochs { _ = try trainer.trainEpoch(on: data) }
            } catch {
                // rank 0 reports this failure, naming this rank; another rank's failure is rank 0's to report too
                trainer.processGroup?.abort(reason: "\(error)")
            }
            finished.signal()
        }.start()
    }

    func join() { finished.wait() }
}
