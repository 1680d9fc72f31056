// Which optimizer a Trainer builds, and how often its schedule steps.

/// The optimizers ``Trainer`` can build from a ``TrainingConfiguration``.
public enum OptimizerKind: String, Sendable, CaseIterable {
    /// ``SGD`` with the configuration's momentum (dampening 0, no Nesterov).
    case sgd
    /// ``Adam`` with PyTorch's betas (0.9, 0.999) and eps 1e-8; weight decay as an L2 term.
    case adam
    /// ``AdamW``: the same, with decoupled weight decay.
    case adamW = "adamw"
}

/// What one step of a ``Trainer``'s ``Trainer/scheduler`` is, as where a
/// PyTorch script calls `scheduler.step()`: after every epoch (StepLR,
/// CosineAnnealingLR over epochs) or after every batch (OneCycleLR).
public enum SchedulerInterval: String, Sendable, CaseIterable {
    case epoch, batch
}

extension TrainingConfiguration {
    /// The configured optimizer over `parameters`, with its learning rate and weight decay.
    ///
    /// - Throws: `invalidArgument` for hyperparameters out of range.
    public func makeOptimizer(parameters: [Parameter]) throws -> any Optimizer {
        switch optimizer {
        case .sgd:
            return try SGD(parameters: parameters, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
        case .adam:
            return try Adam(parameters: parameters, learningRate: learningRate, weightDecay: weightDecay)
        case .adamW:
            return try AdamW(parameters: parameters, learningRate: learningRate, weightDecay: weightDecay)
        }
    }
}

extension Trainer {
    /// Optimizer steps in one epoch over `sampleCount` samples, e.g. to size
    /// a per-batch schedule such as ``OneCycleLR`` (epochs × this).
    public func stepsPerEpoch(sampleCount: Int) -> Int { epochShape(sampleCount: sampleCount).steps }

    /// Samples an epoch trains on (a final batch of one — two per rank when
    /// data-parallel — is dropped; see ``Trainer``) and its step count.
    func epochShape(sampleCount: Int) -> (samples: Int, steps: Int) {
        let size = configuration.batchSize, ranks = processGroup?.size ?? 1
        let remainder = sampleCount % size
        let used = remainder > 0 && remainder < 2 * ranks ? sampleCount - remainder : sampleCount
        return (used, (used + size - 1) / size)
    }
}
