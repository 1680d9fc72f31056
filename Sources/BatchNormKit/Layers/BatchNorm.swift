import BatchNormKernels

/// Batch normalization, the shared implementation of ``BatchNorm1d`` and
/// ``BatchNorm2d`` (PyTorch's `_BatchNorm`; Ioffe & Szegedy, 2015,
/// arXiv:1502.03167).
///
///     y = (x − E[x]) / √(Var[x] + ε) · γ + β
///
/// - Statistics per feature (channel) `c`, over every value of axis 1's
///   index `c`: N·L values for `(N, C, L)`, N·H·W for `(N, C, H, W)`.
/// - Training mode (or `trackRunningStats: false`): normalizes with the
///   batch mean and *biased* variance, and updates the running buffers
///   with the *unbiased* variance (PyTorch's convention):
///   `running = (1 − momentum)·running + momentum·batch`.
///   `momentum` 0.1 weighs the new batch; the seed lesson's (Keras's) 0.9
///   weighs the old value — the same update written the other way round.
///   `momentum: nil` averages all batches cumulatively.
/// - Evaluation mode: normalizes with `running_mean` and `running_var`, so a
///   sample's output does not depend on the rest of its batch.
/// - Parameters γ (`weight`, init 1) and β (`bias`, init 0), `[C]`.
///   Buffers `running_mean` (0), `running_var` (1), `num_batches_tracked` (0):
///   saved with the model, never touched by an optimizer.
///
/// Not subclassable outside the module: use the two concrete layers.
public class _BatchNorm: Layer, BatchCounting {
    /// C, the size of axis 1 of the input.
    public let numFeatures: Int
    /// Added to the variance before the square root (default 1e-5).
    public let eps: Float
    /// Weight of the new batch in the running statistics; nil = cumulative.
    public let momentum: Float?
    /// Whether γ and β are learned (default true).
    public let affine: Bool
    /// Whether running buffers exist and eval mode uses them (default true).
    public let trackRunningStats: Bool
    /// γ `[C]` (nil unless `affine`).
    public let weight: Parameter?
    /// β `[C]` (nil unless `affine`).
    public let bias: Parameter?
    /// `[C]` (nil unless `trackRunningStats`).
    public let runningMean: Tensor?
    /// `[C]` (nil unless `trackRunningStats`).
    public let runningVar: Tensor?
    /// Training batches seen (PyTorch's `num_batches_tracked`, saved as Int64).
    public var numBatchesTracked: Int64 = 0
    public private(set) var isTraining = true

    // Per-feature workspace, allocated once: a step allocates nothing.
    var moments: FeatureMoments
    let work: _BatchNormWorkspace

    // What backward needs from the last forward.
    var input: Tensor?
    var output: Tensor?
    var gradInput: Tensor?
    var usedBatchStatistics = true
    /// Whether the last forward ran in training mode (its statistics went through ``reduceMoments()``).
    var lastForwardTrained = false
    /// Whether the last forward clamped its output (``forwardReLU(_:)``).
    var lastForwardFusedReLU = false
    var lastShape = BatchNormShape(n: 0, c: 0)

    /// The input ranks a layer accepts, and its name in messages.
    let inputKind: _BatchNormInput

    init(_ inputKind: _BatchNormInput, numFeatures: Int, eps: Float, momentum: Float?,
         affine: Bool, trackRunningStats: Bool) throws {
        self.inputKind = inputKind
        guard numFeatures > 0 else {
            throw BatchNormKitError.invalidArgument(name: "numFeatures", value: "\(numFeatures)", requirement: "must be ≥ 1")
        }
        guard eps > 0, eps.isFinite else {
            throw BatchNormKitError.invalidArgument(name: "eps", value: "\(eps)", requirement: "must be a finite number > 0")
        }
        if let m = momentum, !(m >= 0 && m <= 1) {
            throw BatchNormKitError.invalidArgument(name: "momentum", value: "\(m)", requirement: "must be in [0, 1] (or nil for a cumulative average)")
        }
        let c = numFeatures
        self.numFeatures = c
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.trackRunningStats = trackRunningStats
        if affine {
            let g = Tensor(_validShape: [c]); g.fill(1)
            weight = Parameter(g)
            bias = Parameter(Tensor(_validShape: [c]))
        } else {
            weight = nil; bias = nil
        }
        if trackRunningStats {
            runningMean = Tensor(_validShape: [c])
            let v = Tensor(_validShape: [c]); v.fill(1)
            runningVar = v
        } else {
            runningMean = nil; runningVar = nil
        }
        moments = FeatureMoments(featureCount: c)
        work = _BatchNormWorkspace(featureCount: c)
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    /// Resets the running buffers to mean 0, variance 1 and the counter to 0.
    public func resetRunningStats() {
        runningMean?.fill(0); runningVar?.fill(1); numBatchesTracked = 0
    }

    // MARK: Hooks (SyncBatchNorm overrides them)

    /// Called in a training forward with this batch's `moments`: makes them
    /// the statistics to normalize with. The default keeps them (the batch is
    /// this layer's alone); SyncBatchNorm merges every rank's.
    func reduceMoments() throws {}

    /// Called in backward with this batch's Σdy and Σdy·(x − shift) in
    /// `work.sumGrad`, `work.sumGradShifted`. The default returns nil: the
    /// backward takes dγ, dβ and dx from these sums. An override that
    /// accumulates dγ, dβ from them itself, then replaces them with the sums
    /// over the whole batch, returns the values per feature of that batch.
    func reduceGradientSums(gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?) throws -> Int? {
        nil
    }

    /// What a "not enough values" message names: this layer, or every rank's.
    var statisticsContext: String { context }

    /// `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked` under `prefix`, as PyTorch names them.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        var e: [(name: String, entry: StateEntry)] = []
        if let weight, let bias { e += [(prefix + "weight", .parameter(weight)), (prefix + "bias", .parameter(bias))] }
        if let runningMean, let runningVar {
            e += [(prefix + "running_mean", .buffer(runningMean)), (prefix + "running_var", .buffer(runningVar)),
                  (prefix + "num_batches_tracked", .batchCounter(self))]
        }
        return e
    }

    /// The layer as messages name it, e.g. `BatchNorm2d(64)`.
    var context: String { "\(inputKind.typeName)(\(numFeatures))" }

    /// The kernels' view of an input, after checking it: `(N, C, L)` with
    /// L the product of the axes after C (1 for `(N, C)`).
    func layout(of x: Tensor) throws -> BatchNormShape {
        guard inputKind.ranks.contains(x.shape.count) else {
            throw BatchNormKitError.shapeMismatch(context: context, expected: inputKind.expectedShape(numFeatures), got: x.shape)
        }
        guard x.shape[1] == numFeatures else {
            throw BatchNormKitError.featureCountMismatch(context: context, expected: numFeatures, got: x.shape[1])
        }
        guard x.count > 0 else { throw BatchNormKitError.emptyBatch(context: context) }
        return BatchNormShape(n: x.shape[0], c: numFeatures, l: x.shape.dropFirst(2).reduce(1, *))
    }
}

/// Which inputs a batch-norm layer takes.
enum _BatchNormInput {
    /// `(N, C)` or `(N, C, L)`: BatchNorm1d.
    case sequence
    /// `(N, C, H, W)`: BatchNorm2d.
    case image
    /// `(N, C, *)`: SyncBatchNorm.
    case any

    var ranks: ClosedRange<Int> {
        switch self { case .sequence: 2...3; case .image: 4...4; case .any: 2...Int.max }
    }
    var typeName: String {
        switch self { case .sequence: "BatchNorm1d"; case .image: "BatchNorm2d"; case .any: "SyncBatchNorm" }
    }
    func expectedShape(_ c: Int) -> String {
        switch self {
        case .sequence: "(N, \(c)) or (N, \(c), L)"
        case .image: "(N, \(c), H, W)"
        case .any: "(N, \(c), *)"
        }
    }
}

// MARK: - The layers

/// Batch normalization over a 2-D or 3-D input, `torch.nn.BatchNorm1d`:
/// `(N, C)` (a feature vector per sample, e.g. after a Linear) or `(N, C, L)`
/// (a sequence of L positions per channel). Statistics per feature over N·L
/// values; the formula, modes and buffers are those of the shared base class
/// `_BatchNorm` (see <doc:TheSeedLessonInCode>).
public final class BatchNorm1d: _BatchNorm {
    /// - Parameters:
    ///   - numFeatures: C, the size of axis 1 of the input.
    ///   - eps: added to the variance for stability; must be > 0. Default 1e-5.
    ///   - momentum: in [0, 1], or nil for a cumulative average. Default 0.1.
    ///   - affine: learn γ and β. Default true.
    ///   - trackRunningStats: keep running buffers for eval mode. Default true.
    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1,
                affine: Bool = true, trackRunningStats: Bool = true) throws {
        try super.init(.sequence, numFeatures: numFeatures, eps: eps, momentum: momentum,
                       affine: affine, trackRunningStats: trackRunningStats)
    }
}

/// Batch normalization over a 4-D input `(N, C, H, W)`, `torch.nn.BatchNorm2d`
/// ("spatial" batch norm for convolutional feature maps): statistics per
/// channel over N·H·W values; the formula, modes and buffers are
/// BatchNorm1d's (the shared base class `_BatchNorm`). Runs the same kernels as BatchNorm1d on `(N, C, H·W)`.
public final class BatchNorm2d: _BatchNorm {
    /// - Parameters:
    ///   - numFeatures: C, the number of channels (axis 1 of the input).
    ///   - eps: added to the variance for stability; must be > 0. Default 1e-5.
    ///   - momentum: in [0, 1], or nil for a cumulative average. Default 0.1.
    ///   - affine: learn γ and β. Default true.
    ///   - trackRunningStats: keep running buffers for eval mode. Default true.
    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1,
                affine: Bool = true, trackRunningStats: Bool = true) throws {
        try super.init(.image, numFeatures: numFeatures, eps: eps, momentum: momentum,
                       affine: affine, trackRunningStats: trackRunningStats)
    }
}

// MARK: - Workspace

/// The per-feature arrays of a BatchNorm layer's kernels, allocated once
/// (a training step allocates nothing) and freed with the layer: two
/// allocations, owned by a value that cannot be copied.
struct _BatchNormWorkspace: ~Copyable {
    /// Forward constants `[C]`: y = (x − shift)·scale + shiftedBias.
    let shift, scale, shiftedBias: UnsafeMutablePointer<Float>
    /// Backward constants `[C]`: dx = gradScale·dy + inputScale·(x − shift) + gradConstant.
    let gradScale, inputScale, gradConstant: UnsafeMutablePointer<Float>
    /// `[C]` each: 1/σ and mean − shift of the forward; Σdy and Σdy·(x − shift).
    let invStd, meanOffset, sumGrad, sumGradShifted: UnsafeMutablePointer<Double>
    /// Float32 block sums of the backward reduction, `[2C]`.
    let reduceScratch: UnsafeMutablePointer<Float>
    private let floats: UnsafeMutablePointer<Float>
    private let doubles: UnsafeMutablePointer<Double>

    /// Arrays start 64 bytes further apart than their length rounded to 64
    /// bytes. Back to back, with C a multiple of 1024, all of them sit at one
    /// offset within a 4 KB page, and the passes that load three of them per
    /// vector while storing 4 KB rows of y then ran slower in some heap
    /// layouts and not in others (4K aliasing; figures in Benchmarks/README.md).
    init(featureCount c: Int) {
        let fs = (c + 15) / 16 * 16 + 16, ds = (c + 7) / 8 * 8 + 8   // strides: Float, Double
        floats = .allocate(capacity: 8 * fs); floats.initialize(repeating: 0, count: 8 * fs)
        doubles = .allocate(capacity: 4 * ds); doubles.initialize(repeating: 0, count: 4 * ds)
        (shift, scale, shiftedBias) = (floats, floats + fs, floats + 2 * fs)
        (gradScale, inputScale, gradConstant) = (floats + 3 * fs, floats + 4 * fs, floats + 5 * fs)
        reduceScratch = floats + 6 * fs   // [2C] within its two strides
        (invStd, meanOffset, sumGrad, sumGradShifted) = (doubles, doubles + ds, doubles + 2 * ds, doubles + 3 * ds)
    }

    deinit { floats.deallocate(); doubles.deallocate() }
}
