// One training run of the lab: epochs of SGD with evaluation, stopped and
// marked at the first non-finite loss (divergence), never reported as chance accuracy.

/// Per-epoch numbers of one run.
struct EpochRecord {
    let epoch: Int
    let trainLoss: Double, trainAccuracy: Double
    let testLoss: Double, testAccuracy: Double
}

/// A finished (or diverged) run.
struct TrainingRun {
    let network: FeedForwardNetwork
    let epochs: [EpochRecord]
    /// The epoch whose training loss (or test loss) was not finite, or nil.
    let divergedAt: Int?
    /// Final test accuracy, NaN when the run diverged.
    var finalAccuracy: Double { divergedAt == nil ? epochs.last?.testAccuracy ?? .nan : .nan }
    var finalTestLoss: Double { divergedAt == nil ? epochs.last?.testLoss ?? .nan : .nan }
    /// `diverged at epoch k` or empty: the CSV's `diverged` column.
    var divergenceText: String { divergedAt.map { "diverged at epoch \($0)" } ?? "" }
}

/// `trainer.trainEpoch(on:onBatch:)`, with a run that diverged as nil: the
/// Trainer stops at the first non-finite loss with `BatchNormKitError.diverged`,
/// which the lab records as a result, not as a failure.
func trainEpochUnlessDiverged(_ trainer: Trainer, on data: LabeledSamples,
                              onBatch: ((BatchProgress) -> Void)? = nil) throws -> EpochTraining? {
    do { return try trainer.trainEpoch(on: data, onBatch: onBatch) } catch BatchNormKitError.diverged { return nil }
}

extension Lab {
    /// Trains `spec` from `seed` with `configuration` on `data` (the lab's training
    /// samples by default), evaluating on the test samples after every epoch
    /// (or only after the last when `evaluateEveryEpoch` is false).
    /// `onStep(step, network)` runs after every SGD step (1-based global step).
    func trainRun(_ spec: NetworkSpec, seed: UInt64, configuration: TrainingConfiguration, data: LabeledSamples? = nil,
                  evaluateEveryEpoch: Bool = true, probes: Bool = false,
                  onStep: ((Int, FeedForwardNetwork) throws -> Void)? = nil) throws -> TrainingRun {
        let network = try FeedForwardNetwork(spec: spec, seed: seed)
        network.probesEnabled = probes
        let (records, diverged) = try trainModel(network, configuration: configuration, data: data ?? train, test: test,
                                                 evaluateEveryEpoch: evaluateEveryEpoch,
                                                 onStep: onStep.map { callback in { step in try callback(step, network) } })
        return TrainingRun(network: network, epochs: records, divergedAt: diverged)
    }

    /// Trains any `model` (a ``FeedForwardNetwork``, a ``CNN``) with `configuration`
    /// on `data`, evaluating on `test` after every epoch (or only after the last);
    /// returns the per-epoch records and the epoch of divergence, if any.
    func trainModel(_ model: Layer, configuration: TrainingConfiguration, data samples: LabeledSamples, test: LabeledSamples,
                    evaluateEveryEpoch: Bool, onStep: ((Int) throws -> Void)? = nil) throws -> (records: [EpochRecord], divergedAt: Int?) {
        var configuration = configuration
        configuration.batchSize = min(configuration.batchSize, samples.count)   // the Trainer refuses a larger one
        let trainer = try Trainer(model: model, configuration: configuration)
        var records: [EpochRecord] = []
        var diverged: Int?
        var stepError: Error?
        for epoch in 1...max(configuration.epochs, 1) where configuration.epochs > 0 {
            let epochPass = try trainEpochUnlessDiverged(trainer, on: samples) { progress in
                guard stepError == nil, let onStep else { return }
                do { try onStep((progress.epoch - 1) * progress.batchCount + progress.batch) } catch { stepError = error }
            }
            if let stepError { throw stepError }
            guard let pass = epochPass, pass.loss.isFinite else { diverged = epoch; break }
            if evaluateEveryEpoch || epoch == configuration.epochs {
                let result = try trainer.evaluate(on: test)
                guard result.loss.isFinite else { diverged = epoch; break }
                records.append(EpochRecord(epoch: epoch, trainLoss: pass.loss, trainAccuracy: pass.accuracy,
                                           testLoss: result.loss, testAccuracy: result.accuracy))
            }
        }
        return (records, diverged)
    }
}

/// The CSV cell of a number (`nan` for a diverged or missing value).
func cell(_ value: Double) -> String { value.isFinite ? "\(value)" : "nan" }
