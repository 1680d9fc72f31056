import Foundation

/// A learning rate as a function of how many times the schedule was
/// stepped, PyTorch's `torch.optim.lr_scheduler`.
///
/// `learningRate(at: k)` is the lr PyTorch's optimizer holds after `k` calls
/// of `scheduler.step()` (k = 0: right after the scheduler was made). A
/// closed form of the step index instead of PyTorch's in-place updates, so a
/// schedule resumes from one number (the step) and composes without state.
/// Whether a step is a batch or an epoch is the caller's choice, as in
/// PyTorch (``Trainer/schedulerInterval``).
public protocol LearningRateScheduler: Sendable {
    /// The learning rate after `step` ≥ 0 scheduler steps.
    func learningRate(at step: Int) -> Double
    /// The momentum after `step` scheduler steps — SGD's momentum, Adam's
    /// β₁ (``Optimizer/setMomentum(_:)``) — for a schedule that cycles it
    /// (``OneCycleLR``); nil (the default) leaves the optimizer's own.
    func momentum(at step: Int) -> Double?
}

extension LearningRateScheduler {
    /// A schedule of the learning rate only: nil.
    public func momentum(at step: Int) -> Double? { nil }
}

/// `torch.optim.lr_scheduler.StepLR`: lr = base · γ^⌊step / stepSize⌋.
public struct StepLR: LearningRateScheduler {
    /// The optimizer's initial lr.
    public let baseLearningRate: Double
    /// Steps between two decays, ≥ 1.
    public let stepSize: Int
    /// Multiplicative decay, PyTorch's default 0.1.
    public let gamma: Double

    /// - Throws: `invalidArgument` for `stepSize < 1` or a negative or non-finite γ.
    public init(baseLearningRate: Double, stepSize: Int, gamma: Double = 0.1) throws {
        guard stepSize >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "step size", value: "\(stepSize)", requirement: "must be ≥ 1")
        }
        try _checkFiniteNonNegative(gamma, "gamma")
        self.baseLearningRate = baseLearningRate
        self.stepSize = stepSize
        self.gamma = gamma
    }

    public func learningRate(at step: Int) -> Double {
        baseLearningRate * pow(gamma, Double(max(step, 0) / stepSize))
    }
}

/// `torch.optim.lr_scheduler.CosineAnnealingLR` (Loshchilov & Hutter,
/// "SGDR", 2017, without restarts):
///
///     lr = ηmin + (base − ηmin) · (1 + cos(π · step / tMax)) / 2
///
/// Past `tMax` it rises again, as PyTorch's does (a period of 2·tMax).
public struct CosineAnnealingLR: LearningRateScheduler {
    /// The optimizer's initial lr.
    public let baseLearningRate: Double
    /// Steps from the base lr down to ηmin, ≥ 1.
    public let tMax: Int
    /// The lowest lr, PyTorch's default 0.
    public let etaMin: Double

    /// - Throws: `invalidArgument` for `tMax < 1`.
    public init(baseLearningRate: Double, tMax: Int, etaMin: Double = 0) throws {
        guard tMax >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "T_max", value: "\(tMax)", requirement: "must be ≥ 1")
        }
        self.baseLearningRate = baseLearningRate
        self.tMax = tMax
        self.etaMin = etaMin
    }

    public func learningRate(at step: Int) -> Double {
        etaMin + (baseLearningRate - etaMin) * (1 + cos(Double.pi * Double(max(step, 0)) / Double(tMax))) / 2
    }
}

/// `torch.optim.lr_scheduler.LinearLR`, the usual warm-up: the factor goes
/// linearly from `startFactor` to `endFactor` over `totalIters` steps, then stays.
///
///     lr = base · (start + (end − start) · min(step, totalIters) / totalIters)
public struct LinearLR: LearningRateScheduler {
    /// The optimizer's initial lr.
    public let baseLearningRate: Double
    /// Factor at step 0, in (0, 1]; PyTorch's default 1/3.
    public let startFactor: Double
    /// Factor from `totalIters` on, in [0, 1]; default 1.
    public let endFactor: Double
    /// Steps of the ramp, ≥ 1; default 5.
    public let totalIters: Int

    /// - Throws: `invalidArgument` for factors outside PyTorch's ranges or `totalIters < 1`.
    public init(baseLearningRate: Double, startFactor: Double = 1.0 / 3, endFactor: Double = 1, totalIters: Int = 5) throws {
        guard startFactor > 0, startFactor <= 1 else {
            throw BatchNormKitError.invalidArgument(name: "start factor", value: "\(startFactor)", requirement: "must be in (0, 1]")
        }
        guard endFactor >= 0, endFactor <= 1 else {
            throw BatchNormKitError.invalidArgument(name: "end factor", value: "\(endFactor)", requirement: "must be in [0, 1]")
        }
        guard totalIters >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "total iters", value: "\(totalIters)", requirement: "must be ≥ 1")
        }
        self.baseLearningRate = baseLearningRate
        self.startFactor = startFactor
        self.endFactor = endFactor
        self.totalIters = totalIters
    }

    public func learningRate(at step: Int) -> Double {
        let progress = Double(min(max(step, 0), totalIters)) / Double(totalIters)
        return baseLearningRate * (startFactor + (endFactor - startFactor) * progress)
    }
}

/// `torch.optim.lr_scheduler.OneCycleLR` (Smith & Topin, "Super-Convergence",
/// 2018), stepped once per batch, cosine annealing, two phases:
///
///     initial = maxLR / divFactor,  final = initial / finalDivFactor
///     up:   initial → maxLR over steps 0 … pctStart·totalSteps − 1
///     down: maxLR → final over the rest, ending at step totalSteps − 1
///
/// each phase `end + (start − end) · (1 + cos(π · pct)) / 2`. With
/// `cycleMomentum` (PyTorch's default) the momentum — SGD's, or Adam's β₁ —
/// runs the other way in the same phases, `maxMomentum` → `baseMomentum` →
/// `maxMomentum` (0.95 → 0.85 → 0.95). Steps past the last stay at the
/// last step's values (PyTorch raises there).
public struct OneCycleLR: LearningRateScheduler {
    /// The peak lr.
    public let maxLearningRate: Double
    /// Steps in the cycle (epochs × batches per epoch), ≥ 2.
    public let totalSteps: Int
    /// Fraction of the cycle spent increasing the lr; default 0.3.
    public let pctStart: Double
    /// initial lr = maxLR / divFactor; default 25.
    public let divFactor: Double
    /// final lr = initial lr / finalDivFactor; default 10⁴.
    public let finalDivFactor: Double
    /// Whether the momentum cycles inversely to the lr (PyTorch's `cycle_momentum`, default true).
    public let cycleMomentum: Bool
    /// The momentum at the lr's peak; default 0.85.
    public let baseMomentum: Double
    /// The momentum at the start and the end; default 0.95.
    public let maxMomentum: Double

    /// - Throws: `invalidArgument` for `totalSteps < 2`, `pctStart` outside
    ///   (0, 1) or a non-positive factor.
    public init(maxLearningRate: Double, totalSteps: Int, pctStart: Double = 0.3,
                divFactor: Double = 25, finalDivFactor: Double = 1e4,
                cycleMomentum: Bool = true, baseMomentum: Double = 0.85, maxMomentum: Double = 0.95) throws {
        guard totalSteps >= 2 else {
            throw BatchNormKitError.invalidArgument(name: "total steps", value: "\(totalSteps)", requirement: "must be ≥ 2")
        }
        guard pctStart > 0, pctStart < 1 else {
            throw BatchNormKitError.invalidArgument(name: "pct start", value: "\(pctStart)", requirement: "must be in (0, 1)")
        }
        guard divFactor > 0, finalDivFactor > 0 else {
            throw BatchNormKitError.invalidArgument(name: "div factor", value: "\(divFactor), \(finalDivFactor)", requirement: "must be > 0")
        }
        guard 0 <= baseMomentum, baseMomentum <= maxMomentum, maxMomentum < 1 else {
            throw BatchNormKitError.invalidArgument(name: "momentum range", value: "\(baseMomentum)…\(maxMomentum)",
                                                    requirement: "must satisfy 0 ≤ base ≤ max < 1")
        }
        self.maxLearningRate = maxLearningRate
        self.totalSteps = totalSteps
        self.pctStart = pctStart
        self.divFactor = divFactor
        self.finalDivFactor = finalDivFactor
        self.cycleMomentum = cycleMomentum
        self.baseMomentum = baseMomentum
        self.maxMomentum = maxMomentum
    }

    public func learningRate(at step: Int) -> Double {
        let initial = maxLearningRate / divFactor
        return annealed(at: step, up: (initial, maxLearningRate), down: (maxLearningRate, initial / finalDivFactor))
    }

    public func momentum(at step: Int) -> Double? {
        cycleMomentum ? annealed(at: step, up: (maxMomentum, baseMomentum), down: (baseMomentum, maxMomentum)) : nil
    }

    /// PyTorch's two cosine phases: `up` until pctStart·totalSteps − 1, then `down` until totalSteps − 1.
    private func annealed(at step: Int, up: (Double, Double), down: (Double, Double)) -> Double {
        let peakStep = pctStart * Double(totalSteps) - 1, lastStep = Double(totalSteps - 1)
        let s = Double(min(max(step, 0), totalSteps - 1))
        func anneal(_ start: Double, _ end: Double, _ pct: Double) -> Double { end + (start - end) / 2 * (cos(Double.pi * pct) + 1) }
        if s <= peakStep { return anneal(up.0, up.1, s / peakStep) }
        return anneal(down.0, down.1, (s - peakStep) / (lastStep - peakStep))
    }
}

/// `torch.optim.lr_scheduler.SequentialLR`: `schedulers[0]` until
/// `milestones[0]`, then `schedulers[1]` restarted at its step 0, and so on
/// — e.g. a ``LinearLR`` warm-up of K steps followed by ``CosineAnnealingLR``.
public struct SequentialLR: LearningRateScheduler {
    /// The schedules, in order of use.
    public let schedulers: [any LearningRateScheduler]
    /// Steps at which the next schedule takes over, increasing; one fewer than the schedules.
    public let milestones: [Int]

    /// - Throws: `invalidArgument` unless there is one milestone fewer than
    ///   schedulers and the milestones are positive and increasing.
    public init(schedulers: [any LearningRateScheduler], milestones: [Int]) throws {
        guard !schedulers.isEmpty, milestones.count == schedulers.count - 1 else {
            throw BatchNormKitError.invalidArgument(name: "milestones", value: "\(milestones)",
                                                    requirement: "must be one fewer than the \(schedulers.count) schedulers")
        }
        guard zip([0] + milestones, milestones).allSatisfy({ $0 < $1 }) else {
            throw BatchNormKitError.invalidArgument(name: "milestones", value: "\(milestones)", requirement: "must be positive and increasing")
        }
        self.schedulers = schedulers
        self.milestones = milestones
    }

    public func learningRate(at step: Int) -> Double {
        let (index, local) = position(step)
        return schedulers[index].learningRate(at: local)
    }

    public func momentum(at step: Int) -> Double? {
        let (index, local) = position(step)
        return schedulers[index].momentum(at: local)
    }

    /// The schedule in charge at `step` and its own step count.
    private func position(_ step: Int) -> (index: Int, step: Int) {
        let index = milestones.lastIndex(where: { $0 <= step }).map { $0 + 1 } ?? 0
        return (index, step - (index == 0 ? 0 : milestones[index - 1]))
    }
}
