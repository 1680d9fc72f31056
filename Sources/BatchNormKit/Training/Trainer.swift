import BatchNormKernels
import KernelSupport

// The training loop of a PyTorch script, as a reusable object:
//
//     for epoch in 1...epochs:
//         for x, y in DataLoader(train, batch_size, shuffle=True):   # seeded shuffle
//             loss = criterion(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
//         evaluate(model.eval(), test)
//
// The loop allocates nothing per step: the batch is gathered into a tensor
// kept across steps, labels into a kept array, and every layer reuses its
// own buffers. Evaluation is in `Trainer+Evaluation.swift`.

// MARK: - Data

/// Labeled samples in memory: features `(count, featureCount)` row-major and
/// one class index per sample. Arrays are shared, not copied (copy-on-write).
public struct LabeledSamples: Sendable {
    /// N, the number of samples.
    public let count: Int
    /// Features per sample (784 for 28×28 images).
    public let featureCount: Int
    /// Shape `(count, featureCount)`, row-major.
    public let features: [Float]
    /// Shape `[count]`; each value a class index `0..<K` for the model's K logits.
    public let labels: [Int32]

    /// Samples from flat features and labels.
    /// - Throws: `invalidArgument` for `featureCount < 1`; `elementCountMismatch`
    ///   when `features.count != labels.count · featureCount`.
    public init(features: [Float], labels: [Int32], featureCount: Int) throws {
        guard featureCount >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "featureCount", value: "\(featureCount)", requirement: "must be ≥ 1")
        }
        guard features.count == labels.count * featureCount else {
            throw BatchNormKitError.elementCountMismatch(
                context: "LabeledSamples with \(labels.count) labels × \(featureCount) features",
                expected: labels.count * featureCount, got: features.count)
        }
        self.count = labels.count
        self.featureCount = featureCount
        self.features = features
        self.labels = labels
    }

    /// One split of an MNIST-layout dataset (shares its arrays).
    public init(_ split: MNISTDataset.Split) {
        count = split.count
        featureCount = split.featureCount
        features = split.images
        labels = split.labels
    }
}

// MARK: - Configuration and reports

/// Hyperparameters of a run. The defaults are the seed lesson's recipe:
/// 10 epochs, batch 128, SGD lr 0.1 momentum 0.9, no weight decay, seed 0.
public struct TrainingConfiguration: Sendable, Equatable {
    /// Passes over the training set in ``Trainer/fit(train:test:onBatch:onEpoch:)``.
    public var epochs: Int
    /// Samples per training step, ≥ 2 (BatchNorm cannot train on one sample).
    public var batchSize: Int
    /// The optimizer's step size (PyTorch's `lr`); a ``Trainer/scheduler`` varies it.
    public var learningRate: Float
    /// SGD momentum (dampening 0, no Nesterov, as `torch.optim.SGD`'s defaults); unused by Adam and AdamW.
    public var momentum: Float
    /// L2 penalty added to every gradient (PyTorch's `weight_decay`).
    public var weightDecay: Float
    /// Fixes the shuffling order (the model's initial weights have their own seed).
    public var seed: UInt64
    /// Samples per evaluation forward; only memory and speed depend on it.
    public var evaluationBatchSize: Int
    /// SGD (``momentum`` applies), Adam or AdamW (PyTorch's betas and eps;
    /// ``learningRate`` and ``weightDecay`` apply).
    public var optimizer: OptimizerKind = .sgd

    /// The seed lesson's recipe unless told otherwise.
    public init(epochs: Int = 10, batchSize: Int = 128, learningRate: Float = 0.1, momentum: Float = 0.9,
                weightDecay: Float = 0, seed: UInt64 = 0, evaluationBatchSize: Int = 1000) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.seed = seed
        self.evaluationBatchSize = evaluationBatchSize
    }
}

/// Where an epoch is, passed to the per-batch callback after every step.
public struct BatchProgress: Sendable {
    /// 1-based epoch number.
    public let epoch: Int
    /// Steps done in this epoch (1 after the first step).
    public let batch: Int
    /// Steps in this epoch.
    public let batchCount: Int
    /// Samples trained on so far in this epoch.
    public let samplesDone: Int
    /// Samples this epoch trains on (the dataset, minus a dropped batch of one).
    public let sampleCount: Int
    /// Mean loss per sample over the epoch's steps so far.
    public let runningLoss: Double
    /// Fraction of this epoch's samples so far whose top logit was the label (train mode).
    public let runningAccuracy: Double
    /// Seconds since the epoch started.
    public let elapsedSeconds: Double
}

/// The result of one training pass over the data.
public struct EpochTraining: Sendable, Equatable {
    /// Mean cross-entropy per sample over the epoch, each computed in train
    /// mode at the moment its step ran (what PyTorch scripts usually print).
    public let loss: Double
    /// Running accuracy of the same forwards.
    public let accuracy: Double
    /// Samples trained on.
    public let samples: Int
    /// Wall-clock seconds of the pass (gather, forward, backward, update).
    public let seconds: Double
    /// SGD steps taken.
    public var steps: Int = 0
}

// MARK: - Trainer

/// Mini-batch training (``SGD``, ``Adam`` or ``AdamW``) of a model with ``CrossEntropyLoss``, PyTorch style.
///
/// Each epoch visits the samples in a fresh Fisher–Yates permutation drawn
/// from ``SplitMix64`` seeded by ``TrainingConfiguration/seed``: the same
/// seed, model and machine give the same numbers. The final partial batch
/// is kept (PyTorch's `drop_last=False`) — except a final batch of exactly
/// one sample, which is dropped: BatchNorm cannot normalize one value per
/// feature (PyTorch raises there). The sample left out is a different,
/// random one each epoch.
///
/// A batch size above the sample count is refused (see `Trainer+Safety.swift`),
/// and a non-finite loss or weights stop the run with
/// `BatchNormKitError.diverged(epoch:step:loss:)` instead of training on NaN.
public final class Trainer {
    /// The network being trained, logits `(N, K)` from `(N, featureCount)`.
    public let model: Layer
    /// The optimizer over `model.parameters()` chosen by ``TrainingConfiguration/optimizer``.
    public let optimizer: any Optimizer
    /// The hyperparameters, fixed at creation.
    public let configuration: TrainingConfiguration
    /// Epochs finished by ``trainEpoch(on:onBatch:)`` (numbers the next one).
    public internal(set) var epochsCompleted = 0
    /// Optimizer steps taken so far, over all epochs.
    public internal(set) var stepsCompleted = 0
    /// Sets the optimizer's lr before every step (nil: the configuration's
    /// constant lr), stepped once per epoch or per batch as ``schedulerInterval`` says.
    public var scheduler: (any LearningRateScheduler)?
    /// What one step of ``scheduler`` is.
    public var schedulerInterval: SchedulerInterval = .epoch

    let criterion = CrossEntropyLoss()
    /// Data parallelism: the ranks this trainer is one of (nil: alone).
    public let processGroup: ProcessGroup?
    /// Every parameter's gradient plus the step's loss sum and correct count,
    /// flattened for one all-reduce per step (data-parallel only).
    var exchange: UnsafeMutableBufferPointer<Double>
    /// Whether rank 0's state has been broadcast (before the first step).
    var replicasSynchronized = false
    var generator: SplitMix64
    var order: [Int] = []
    // Batch buffers: full-size, and a second pair for a smaller final batch,
    // so neither is ever resized (layers' own buffers only re-view storage).
    private var batch: Tensor?
    private var batchLabels: [Int32] = []
    private var tailBatch: Tensor?
    private var tailLabels: [Int32] = []

    /// - Throws: `invalidArgument` for `batchSize < 2`, `epochs < 0`,
    ///   `evaluationBatchSize < 1` or SGD hyperparameters out of range.
    public init(model: Layer, configuration: TrainingConfiguration = TrainingConfiguration(),
                processGroup: ProcessGroup? = nil) throws {
        guard configuration.batchSize >= 2 else {
            throw BatchNormKitError.invalidArgument(name: "batch size", value: "\(configuration.batchSize)",
                                                    requirement: "must be ≥ 2 (BatchNorm needs two samples per step)")
        }
        guard configuration.epochs >= 0 else {
            throw BatchNormKitError.invalidArgument(name: "epochs", value: "\(configuration.epochs)", requirement: "must be ≥ 0")
        }
        guard configuration.evaluationBatchSize >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "evaluation batch size", value: "\(configuration.evaluationBatchSize)",
                                                    requirement: "must be ≥ 1")
        }
        if let processGroup, configuration.batchSize < 2 * processGroup.size {
            throw BatchNormKitError.invalidArgument(name: "batch size", value: "\(configuration.batchSize)",
                                                    requirement: "must be ≥ 2 per rank (\(processGroup.size) ranks)")
        }
        self.model = model
        self.configuration = configuration
        self.processGroup = processGroup
        optimizer = try configuration.makeOptimizer(parameters: model.parameters())
        let values = processGroup == nil ? 0 : optimizer.parameters.reduce(2) { $0 + $1.value.count }
        exchange = .allocate(capacity: values)
        exchange.initialize(repeating: 0)
        // Decorrelated from the weight initialisation, which also uses SplitMix64(seed).
        generator = SplitMix64(seed: configuration.seed ^ 0x5348_5546_464C_4521)
    }

    deinit { exchange.deallocate() }

    /// Trains until `configuration.epochs` epochs are done (all of them for a fresh
    /// trainer, the rest for a resumed one), evaluating on `test` after each.
    ///
    /// - Parameters:
    ///   - train: the samples of every epoch, shuffled anew each time.
    ///   - test: evaluated after every epoch.
    ///   - onBatch: called after every step (keep it cheap: it runs inside the timed loop).
    ///   - onEpoch: called with each epoch's metrics as soon as they are known.
    /// - Returns: one ``EpochMetrics`` per epoch.
    @discardableResult
    public func fit(train: LabeledSamples, test: LabeledSamples,
                    onBatch: ((BatchProgress) -> Void)? = nil,
                    onEpoch: ((EpochMetrics) throws -> Void)? = nil) throws -> [EpochMetrics] {
        var history: [EpochMetrics] = []
        for _ in epochsCompleted..<max(configuration.epochs, epochsCompleted) {   // a resumed trainer continues
            let pass = try trainEpoch(on: train, onBatch: onBatch)
            let start = ContinuousClock.now
            let result = try evaluate(on: test)
            guard result.loss.isFinite else {
                throw BatchNormKitError.diverged(epoch: epochsCompleted, step: pass.steps, loss: result.loss)
            }
            let metrics = EpochMetrics(
                epoch: epochsCompleted, trainLoss: pass.loss, trainAccuracy: pass.accuracy,
                testLoss: result.loss, testAccuracy: result.accuracy, seconds: pass.seconds,
                samplesPerSecond: Double(pass.samples) / max(pass.seconds, 1e-9),
                evaluationSeconds: _seconds(ContinuousClock.now - start))
            history.append(metrics)
            try onEpoch?(metrics)
        }
        return history
    }

    // MARK: - One epoch

    /// One pass over `data` in a new random order, in training mode.
    ///
    /// - Throws: `elementCountMismatch` when `data.count < 2`; the model's
    ///   errors (e.g. `featureCountMismatch`) and `invalidArgument` for a
    ///   label outside the model's classes.
    public func trainEpoch(on data: LabeledSamples, onBatch: ((BatchProgress) -> Void)? = nil) throws -> EpochTraining {
        guard data.count >= 2 else {
            throw BatchNormKitError.elementCountMismatch(context: "training set (at least 2 samples)", expected: 2, got: data.count)
        }
        let size = configuration.batchSize, features = data.featureCount
        let ranks = processGroup?.size ?? 1, rank = processGroup?.rank ?? 0
        try checkBatches(for: data, ranks: ranks)
        // Drop a final batch of one (two per rank when data-parallel; see the type's documentation).
        let (used, batchCount) = epochShape(sampleCount: data.count)
        // this rank's rows of a batch of n: the kernels' one partition
        @inline(__always) func share(_ n: Int) -> Range<Int> { _partRange(rank, of: ranks, n) }
        prepareBuffers(sampleCount: data.count, features: features, rows: share(size).count, tailRows: share(used % size).count)
        shuffleOrder()
        model.train()
        if processGroup != nil && !replicasSynchronized { try broadcastStateFromRankZero(); replicasSynchronized = true }
        let epoch = epochsCompleted + 1
        var lossSum = 0.0, correct = 0, done = 0
        let start = ContinuousClock.now

        try data.features.withUnsafeBufferPointer { source in
            try data.labels.withUnsafeBufferPointer { allLabels in
                try order.withUnsafeBufferPointer { order in
                    for step in 0..<batchCount {
                        let n = min(size, used - done)
                        let isFull = n == size
                        let x = isFull ? batch! : tailBatch!
                        let mine = share(n), first = done + mine.lowerBound
                        // Gather the rows of this step's samples (this rank's share of them).
                        let destination = x._pointer
                        for row in 0..<mine.count {
                            let index = order[first + row]
                            (destination + row * features).update(from: source.baseAddress! + index * features, count: features)
                        }
                        if isFull {
                            batchLabels.withUnsafeMutableBufferPointer { for row in 0..<mine.count { $0[row] = allLabels[order[first + row]] } }
                        } else {
                            tailLabels.withUnsafeMutableBufferPointer { for row in 0..<mine.count { $0[row] = allLabels[order[first + row]] } }
                        }
                        let logits = try model.forward(x)
                        let loss = try criterion.forward(logits: logits, labels: isFull ? batchLabels : tailLabels)
                        optimizer.zeroGrad()
                        let gradLogits = try criterion.backward()
                        var stepLoss = Double(loss) * Double(mine.count), stepCorrect = criterion.lastCorrectCount
                        if processGroup != nil {
                            // this rank's part of the mean over all n: scale by its share
                            gradLogits._scale(by: Float(mine.count) / Float(n))
                        }
                        _ = try model.backward(gradLogits, needsInputGradient: false)
                        if processGroup != nil {
                            (stepLoss, stepCorrect) = try allReduceGradients(lossSum: stepLoss, correct: stepCorrect)
                        }
                        // every rank sees the same all-reduced loss, so all stop at the same step
                        guard stepLoss.isFinite else {
                            throw BatchNormKitError.diverged(epoch: epoch, step: step + 1, loss: stepLoss / Double(n))
                        }
                        if let scheduler {
                            let position = schedulerInterval == .epoch ? epoch - 1 : stepsCompleted
                            optimizer.learningRate = Float(scheduler.learningRate(at: position))
                            if let momentum = scheduler.momentum(at: position) { optimizer.setMomentum(momentum) }
                        }
                        optimizer.step()
                        stepsCompleted += 1

                        lossSum += stepLoss
                        correct += stepCorrect
                        done += n
                        if let onBatch {
                            onBatch(BatchProgress(epoch: epoch, batch: step + 1, batchCount: batchCount, samplesDone: done,
                                                  sampleCount: used, runningLoss: lossSum / Double(done),
                                                  runningAccuracy: Double(correct) / Double(done),
                                                  elapsedSeconds: _seconds(ContinuousClock.now - start)))
                        }
                    }
                }
            }
        }
        // the last step can still overflow the weights with a finite loss
        if model.firstNonFiniteStateEntry() != nil {
            throw BatchNormKitError.diverged(epoch: epoch, step: batchCount, loss: .nan)
        }
        epochsCompleted = epoch
        return EpochTraining(loss: lossSum / Double(done), accuracy: Double(correct) / Double(done),
                             samples: done, seconds: _seconds(ContinuousClock.now - start), steps: batchCount)
    }

    // MARK: - Buffers and shuffling

    /// Allocates the batch buffers and the permutation once per shape of data:
    /// `rows` of a full batch and `tailRows` of the final one (this rank's share).
    private func prepareBuffers(sampleCount: Int, features: Int, rows: Int, tailRows: Int) {
        if batch?.shape != [rows, features] {
            batch = Tensor(_validShape: [rows, features])
            batchLabels = [Int32](repeating: 0, count: rows)
        }
        if tailRows > 0, tailBatch?.shape != [tailRows, features] {
            tailBatch = Tensor(_validShape: [tailRows, features])
            tailLabels = [Int32](repeating: 0, count: tailRows)
        }
        if order.count != sampleCount {
            order = Array(0..<sampleCount)
        }
    }

    /// Fisher–Yates over the previous epoch's order (as PyTorch's
    /// `randperm`, every permutation is equally likely).
    private func shuffleOrder() {
        order.withUnsafeMutableBufferPointer { order in
            var i = order.count - 1
            while i > 0 {
                let j = Int(generator.next(upperBound: UInt64(i + 1)))
                order.swapAt(i, j)
                i -= 1
            }
        }
    }
}

/// A duration in seconds.
func _seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
}
