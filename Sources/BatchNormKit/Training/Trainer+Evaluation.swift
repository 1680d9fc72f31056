// Evaluation: the model in eval mode over a dataset in fixed-size batches,
// PyTorch's `with torch.no_grad(): for x, y in test_loader: ...`, and the
// per-epoch report that combines it with the training pass.

// MARK: - Evaluation result

/// Loss and accuracy of a model on a dataset, overall and per class.
public struct Evaluation: Sendable, Equatable {
    /// Mean cross-entropy per sample.
    public let loss: Double
    /// Fraction of samples whose top logit is the label (ties: the first maximum).
    public let accuracy: Double
    /// Correct predictions per class, indexed by label `[K]`.
    public let correctPerClass: [Int]
    /// Samples per class, indexed by label `[K]`.
    public let countPerClass: [Int]

    /// Samples evaluated.
    public var sampleCount: Int { countPerClass.reduce(0, +) }

    /// Accuracy per class `[K]`; nil for a class with no samples.
    public var classAccuracies: [Double?] {
        zip(correctPerClass, countPerClass).map { $1 == 0 ? nil : Double($0) / Double($1) }
    }
}

// MARK: - Epoch report

/// What the CLI prints and `--metrics` records after each epoch.
public struct EpochMetrics: Sendable, Equatable {
    /// 1-based epoch number.
    public let epoch: Int
    /// Mean training loss per sample, running over the epoch (see ``EpochTraining/loss``).
    public let trainLoss: Double
    /// Running training accuracy over the epoch, in [0, 1].
    public let trainAccuracy: Double
    /// Eval-mode mean loss per sample on the test split after the epoch.
    public let testLoss: Double
    /// Eval-mode accuracy on the test split after the epoch, in [0, 1].
    public let testAccuracy: Double
    /// Seconds of the training pass (evaluation excluded: see ``evaluationSeconds``).
    public let seconds: Double
    /// Training samples per second of the pass.
    public let samplesPerSecond: Double
    /// Seconds spent evaluating the test split.
    public let evaluationSeconds: Double
}

// MARK: - Evaluating a model

extension Layer {
    /// Evaluates the model on `data` in eval mode (running statistics for
    /// BatchNorm, so the result does not depend on `batchSize`), then puts
    /// it back in the mode it was in.
    ///
    /// - Parameters:
    ///   - data: features `(N, F)` matching the model's input, labels in `0..<K`.
    ///   - batchSize: samples per forward (memory/speed only).
    /// - Throws: `emptyBatch` for no samples, `invalidArgument` for
    ///   `batchSize < 1` or a label outside `0..<K`, or the model's errors.
    public func evaluate(on data: LabeledSamples, batchSize: Int = 1000) throws -> Evaluation {
        guard batchSize >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "batch size", value: "\(batchSize)", requirement: "must be ≥ 1")
        }
        guard data.count > 0 else { throw BatchNormKitError.emptyBatch(context: "evaluate") }
        let wasTraining = isTraining
        eval()
        defer { setTraining(wasTraining) }

        let criterion = CrossEntropyLoss()
        let features = data.featureCount
        let full = Tensor(_validShape: [min(batchSize, data.count), features])
        var tail: Tensor?
        var lossSum = 0.0
        var correct: [Int] = [], counts: [Int] = []

        try data.features.withUnsafeBufferPointer { source in
            var start = 0
            while start < data.count {
                let n = min(batchSize, data.count - start)
                let x = n == full.shape[0] ? full : tail._reuse(rows: n, columns: features)
                x._pointer.update(from: source.baseAddress! + start * features, count: n * features)
                // Labels are sliced (one small array per forward, not per sample).
                let labels = Array(data.labels[start..<(start + n)])
                let logits = try forward(x)
                lossSum += Double(try criterion.forward(logits: logits, labels: labels)) * Double(n)
                let k = logits.shape[1]
                if counts.isEmpty { correct = [Int](repeating: 0, count: k); counts = correct }
                for row in 0..<n {
                    let scores = logits._pointer + row * k
                    var best = 0
                    for j in 1..<max(k, 1) where scores[j] > scores[best] { best = j }
                    let label = Int(labels[row])
                    counts[label] += 1
                    if best == label { correct[label] += 1 }
                }
                start += n
            }
        }
        return Evaluation(loss: lossSum / Double(data.count),
                          accuracy: Double(correct.reduce(0, +)) / Double(data.count),
                          correctPerClass: correct, countPerClass: counts)
    }
}

extension Trainer {
    /// ``Layer/evaluate(on:batchSize:)`` of the model with the configured
    /// evaluation batch size; the model is back in training mode afterwards
    /// if it was before.
    public func evaluate(on data: LabeledSamples) throws -> Evaluation {
        try model.evaluate(on: data, batchSize: configuration.evaluationBatchSize)
    }
}
