import ArgumentParser
import BatchNormKit

/// `--optimizer`, `--schedule`, `--warmup-epochs` (and the step schedule's
/// knobs) of `bnkit train`.
struct OptimizerOptions: ParsableArguments {
    @Option(help: "sgd (with --momentum), adam or adamw (PyTorch's betas 0.9, 0.999 and eps 1e-8; --lr and --weight-decay apply).")
    var optimizer: OptimizerChoice = .sgd
    @Option(help: ArgumentHelp("""
        Learning-rate schedule, stepped after every batch: none, step (× --gamma every --step-size epochs), \
        cosine (CosineAnnealingLR from --lr towards 0 over the run), onecycle (OneCycleLR with peak --lr, \
        cycle_momentum off).
        """))
    var schedule: ScheduleChoice = .none
    @Option(help: "Epochs of linear warm-up from --lr/10 to --lr before the schedule (LinearLR then SequentialLR); not with onecycle.")
    var warmupEpochs: Int = 0
    @Option(help: "Epochs between two decays of the step schedule (default: a third of the epochs after warm-up).")
    var stepSize: Int?
    @Option(help: "Decay factor of the step schedule.")
    var gamma: Double = 0.1

    func validate(epochs: Int) throws {
        guard warmupEpochs >= 0, warmupEpochs < epochs else {
            throw ValidationError("--warmup-epochs must be in 0..<\(epochs) (the epochs), got \(warmupEpochs)")
        }
        if schedule == .onecycle && warmupEpochs > 0 {
            throw ValidationError("--warmup-epochs does not combine with --schedule onecycle, which warms up by itself")
        }
        if let stepSize, stepSize < 1 { throw ValidationError("--step-size must be at least 1, got \(stepSize)") }
        guard gamma.isFinite, gamma > 0 else { throw ValidationError("--gamma must be a finite number > 0") }
    }

    /// E.g. `adamw, cosine after 1 warm-up epoch`.
    var description: String {
        "\(optimizer.rawValue)" + (schedule == .none && warmupEpochs == 0 ? ", constant lr" : ", lr schedule \(schedule.rawValue)")
            + (warmupEpochs > 0 ? " after \(warmupEpochs) warm-up epoch\(warmupEpochs == 1 ? "" : "s")" : "")
    }

    /// Sets `trainer`'s scheduler (per batch) for `epochs` epochs over `sampleCount` samples.
    func configure(_ trainer: Trainer, epochs: Int, sampleCount: Int) throws {
        let steps = trainer.stepsPerEpoch(sampleCount: sampleCount)
        let lr = Double(trainer.configuration.learningRate)
        let warmup = warmupEpochs * steps, rest = (epochs - warmupEpochs) * steps
        let main: (any LearningRateScheduler)?
        switch schedule {
        case .none: main = warmupEpochs > 0 ? try LinearLR(baseLearningRate: lr, startFactor: 1, totalIters: 1) : nil
        case .step:
            main = try StepLR(baseLearningRate: lr, stepSize: (stepSize ?? max(1, (epochs - warmupEpochs + 2) / 3)) * steps, gamma: gamma)
        case .cosine: main = try CosineAnnealingLR(baseLearningRate: lr, tMax: rest)
        case .onecycle: main = try OneCycleLR(maxLearningRate: lr, totalSteps: max(rest, 2), cycleMomentum: false)
        }
        trainer.schedulerInterval = .batch
        if warmup > 0, let main {
            trainer.scheduler = try SequentialLR(
                schedulers: [try LinearLR(baseLearningRate: lr, startFactor: 0.1, totalIters: warmup), main], milestones: [warmup])
        } else {
            trainer.scheduler = main
        }
    }
}

/// `--optimizer sgd|adam|adamw`.
enum OptimizerChoice: String, ExpressibleByArgument, CaseIterable {
    case sgd, adam, adamw
    var kind: OptimizerKind { OptimizerKind(rawValue: rawValue)! }
}

/// `--schedule none|step|cosine|onecycle`.
enum ScheduleChoice: String, ExpressibleByArgument, CaseIterable {
    case none, step, cosine, onecycle
}
