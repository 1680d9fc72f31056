import BatchNormKernels

/// Instance normalization, the shared implementation of ``InstanceNorm1d`` and
/// ``InstanceNorm2d`` (PyTorch's `_InstanceNorm`; Ulyanov, Vedaldi &
/// Lempitsky, 2016, arXiv:1607.08022): every (sample, channel) is normalized
/// over its own L (or H·W) values — GroupNorm with one channel per group.
///
///     y = (x − E[x]) / √(Var[x] + ε) · γ + β     (E, Var per sample and channel)
///
/// - Defaults as PyTorch: no affine parameters, no running statistics.
/// - `trackRunningStats: true` keeps `running_mean` / `running_var` `[C]`:
///   training updates them with the batch's average instance mean and
///   average *unbiased* instance variance,
///   `running = (1 − momentum)·running + momentum·batch`, and evaluation
///   normalizes with them (then every sample sees the same per-channel
///   affine map). As in PyTorch, `momentum: nil` means momentum 0 here (the
///   buffers keep their values) and `num_batches_tracked` is saved but never
///   incremented.
/// - Training needs more than one value per (sample, channel).
public class _InstanceNorm: _GroupNormalization, BatchCounting {
    /// C, the number of channels.
    public let numFeatures: Int
    /// Weight of the new batch in the running statistics (nil: 0, as PyTorch).
    public let momentum: Float?
    /// Whether per-channel γ and β are learned.
    public let affine: Bool
    /// Whether running buffers exist and evaluation mode uses them.
    public let trackRunningStats: Bool
    /// `[C]` (nil unless `trackRunningStats`).
    public let runningMean: Tensor?
    /// `[C]` (nil unless `trackRunningStats`).
    public let runningVar: Tensor?
    /// Saved as PyTorch saves it; PyTorch's instance norm never increments it.
    public var numBatchesTracked: Int64 = 0
    /// 1 for `(N, C, L)`, 2 for `(N, C, H, W)`.
    let spatialRank: Int

    init(spatialRank: Int, numFeatures: Int, eps: Float, momentum: Float?, affine: Bool, trackRunningStats: Bool) throws {
        guard numFeatures > 0 else {
            throw BatchNormKitError.invalidArgument(name: "numFeatures", value: "\(numFeatures)", requirement: "must be ≥ 1")
        }
        if let m = momentum, !(m >= 0 && m <= 1) {
            throw BatchNormKitError.invalidArgument(name: "momentum", value: "\(m)", requirement: "must be in [0, 1] (or nil)")
        }
        self.spatialRank = spatialRank
        self.numFeatures = numFeatures
        self.momentum = momentum
        self.affine = affine
        self.trackRunningStats = trackRunningStats
        if trackRunningStats {
            runningMean = Tensor(_validShape: [numFeatures])
            let v = Tensor(_validShape: [numFeatures]); v.fill(1)
            runningVar = v
        } else {
            runningMean = nil; runningVar = nil
        }
        try super.init(parameterShape: [numFeatures], eps: eps, weight: affine, bias: affine)
    }

    override var context: String { "InstanceNorm\(spatialRank)d(\(numFeatures))" }

    /// `(N, C, spatial…)`, or one unbatched sample `(C, spatial…)`.
    override func layout(of x: Tensor) throws -> GroupNormShape {
        let batched = x.shape.count == spatialRank + 2
        guard batched || x.shape.count == spatialRank + 1 else {
            let spatial = spatialRank == 1 ? "L" : "H, W"
            throw BatchNormKitError.shapeMismatch(context: context, expected: "(N, \(numFeatures), \(spatial)) or (\(numFeatures), \(spatial))", got: x.shape)
        }
        let c = x.shape[batched ? 1 : 0]
        guard c == numFeatures else {
            throw BatchNormKitError.featureCountMismatch(context: context, expected: numFeatures, got: c)
        }
        guard x.count > 0 else { throw BatchNormKitError.emptyBatch(context: context) }
        return GroupNormShape(n: batched ? x.shape[0] : 1, c: numFeatures, groups: numFeatures,
                              l: x.shape.suffix(spatialRank).reduce(1, *))
    }

    /// `weight`, `bias` (with affine), `running_mean`, `running_var`, `num_batches_tracked` (with running stats).
    public override func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        var e = super.namedStateEntries(prefix: prefix)
        if let runningMean, let runningVar {
            e += [(prefix + "running_mean", .buffer(runningMean)), (prefix + "running_var", .buffer(runningVar)),
                  (prefix + "num_batches_tracked", .batchCounter(self))]
        }
        return e
    }

    // MARK: - Forward (backward is the shared one)

    /// y from x, the same shape: instance statistics in training mode (or
    /// without running buffers), the running statistics in evaluation mode.
    public override func forward(_ x: Tensor) throws -> Tensor {
        let shape = try layout(of: x)
        guard isTraining || !trackRunningStats else { return try forwardWithRunningStatistics(x, shape: shape) }
        if isTraining && shape.l < 2 {
            throw BatchNormKitError.notEnoughValuesPerFeature(context: context, shape: x.shape)
        }
        let y = try super.forward(x)
        if isTraining, let runningMean, let runningVar { updateRunningStatistics(shape, runningMean, runningVar) }
        return y
    }

    /// running ← (1 − f)·running + f·(batch average of the instance means and
    /// unbiased variances), f = momentum (nil: 0), from the row statistics
    /// the forward just measured: μ = shift + meanOffset, σ² = 1/invStd² − ε.
    func updateRunningStatistics(_ shape: GroupNormShape, _ runningMean: Tensor, _ runningVar: Tensor) {
        let f = Double(momentum ?? 0), c = numFeatures, n = shape.n
        let unbiased = Double(shape.l) / Double(shape.l - 1), e = Double(eps)
        let mean = runningMean._pointer, variance = runningVar._pointer
        for channel in 0..<c {
            var sumMean = 0.0, sumVariance = 0.0
            for sample in 0..<n {
                let row = sample * c + channel
                sumMean += Double(shift[row]) + meanOffset[row]
                sumVariance += (1 / (invStd[row] * invStd[row]) - e) * unbiased
            }
            mean[channel] = Float((1 - f) * Double(mean[channel]) + f * sumMean / Double(n))
            variance[channel] = Float((1 - f) * Double(variance[channel]) + f * sumVariance / Double(n))
        }
    }

    /// Evaluation with running statistics: every row (sample, channel) gets
    /// shift = running_mean[c], meanOffset 0, invStd = 1/√(running_var[c] + ε).
    func forwardWithRunningStatistics(_ x: Tensor, shape: GroupNormShape) throws -> Tensor {
        reserveRows(shape.rows)
        let c = numFeatures, mean = runningMean!._pointer, variance = runningVar!._pointer
        for row in 0..<shape.rows {
            shift[row] = mean[row % c]
            meanOffset[row] = 0
            invStd[row] = 1 / (Double(variance[row % c]) + Double(eps)).squareRoot()
        }
        let y = output._reuse(sameShapeAs: x)
        GroupNormKernel.normalize(x._pointer, shape: shape, gamma: weight?.value._pointer,
                                  beta: bias?.value._pointer, shift: shift, meanOffset: meanOffset,
                                  invStd: invStd, output: y._pointer)
        input = x
        lastShape = shape
        usedFixedStatistics = true
        return y
    }
}

// MARK: - The layers

/// Instance normalization over `(N, C, L)` (or one sample `(C, L)`),
/// `torch.nn.InstanceNorm1d` (the shared base class `_InstanceNorm` documents the formula).
public final class InstanceNorm1d: _InstanceNorm {
    /// - Parameters:
    ///   - numFeatures: C ≥ 1.
    ///   - eps: added to the variance; must be > 0. Default 1e-5.
    ///   - momentum: running-statistics weight in [0, 1], or nil (0). Default 0.1.
    ///   - affine: learn per-channel γ and β. Default false (as PyTorch).
    ///   - trackRunningStats: keep running buffers for evaluation. Default false (as PyTorch).
    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1,
                affine: Bool = false, trackRunningStats: Bool = false) throws {
        try super.init(spatialRank: 1, numFeatures: numFeatures, eps: eps, momentum: momentum,
                       affine: affine, trackRunningStats: trackRunningStats)
    }
}

/// Instance normalization over `(N, C, H, W)` (or one sample `(C, H, W)`),
/// `torch.nn.InstanceNorm2d` (the shared base class `_InstanceNorm` documents the formula).
public final class InstanceNorm2d: _InstanceNorm {
    /// - Parameters: as ``InstanceNorm1d/init(numFeatures:eps:momentum:affine:trackRunningStats:)``.
    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1,
                affine: Bool = false, trackRunningStats: Bool = false) throws {
        try super.init(spatialRank: 2, numFeatures: numFeatures, eps: eps, momentum: momentum,
                       affine: affine, trackRunningStats: trackRunningStats)
    }
}
