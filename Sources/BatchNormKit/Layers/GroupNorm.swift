import BatchNormKernels

/// Per-sample normalization, the shared implementation of ``LayerNorm`` and
/// ``GroupNorm`` (``GroupNormKernel``):
///
///     y = (x − E[x]) / √(Var[x] + ε) · γ + β
///
/// with E and Var over each sample's normalized values (biased variance) —
/// not over the batch, so train and eval modes compute the same thing and
/// there are no running buffers. γ (`weight`, init 1) and β (`bias`, init 0).
///
/// Not subclassable outside the module: use the concrete layers.
public class _GroupNormalization: Layer {
    /// Added to the variance before the square root (default 1e-5).
    public let eps: Float
    /// γ, or nil without affine parameters.
    public let weight: Parameter?
    /// β, or nil without a bias.
    public let bias: Parameter?
    public private(set) var isTraining = true

    /// γ's element count: what the kernels call C.
    let channelCount: Int
    // Where dβ of a layer with γ but no β goes, [C], allocated once.
    let discardedGrad: UnsafeMutablePointer<Float>
    // Per-row statistics from the last forward (they grow with the batch).
    var shift: UnsafeMutablePointer<Float>
    var meanOffset, invStd: UnsafeMutablePointer<Double>
    var rowCapacity = 0
    // Backward workspace, [2C].
    let totals: UnsafeMutablePointer<Double>
    let blockSums: UnsafeMutablePointer<Float>

    var input: Tensor?
    var output: Tensor?
    var gradInput: Tensor?
    var lastShape = GroupNormShape(n: 0, c: 1, groups: 1)
    /// The last forward normalized with given statistics (InstanceNorm's
    /// running ones), so they are constants to backward.
    var usedFixedStatistics = false
    /// The last forward was `forwardReLU` (GroupNorm and LayerNorm in a ``Sequential``).
    var lastForwardFusedReLU = false

    init(parameterShape: [Int], eps: Float, weight hasWeight: Bool, bias hasBias: Bool) throws {
        guard eps > 0, eps.isFinite else {
            throw BatchNormKitError.invalidArgument(name: "eps", value: "\(eps)", requirement: "must be a finite number > 0")
        }
        let c = parameterShape.reduce(1, *)
        self.eps = eps
        channelCount = c
        if hasWeight {
            let g = Tensor(_validShape: parameterShape); g.fill(1)
            weight = Parameter(g)
        } else {
            weight = nil
        }
        bias = hasBias ? Parameter(Tensor(_validShape: parameterShape)) : nil
        func floats(_ n: Int, _ value: Float) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n); p.initialize(repeating: value, count: n); return p
        }
        discardedGrad = floats(c, 0)
        blockSums = floats(2 * c, 0)
        totals = .allocate(capacity: 2 * c); totals.initialize(repeating: 0, count: 2 * c)
        shift = .allocate(capacity: 0); meanOffset = .allocate(capacity: 0); invStd = .allocate(capacity: 0)
    }

    deinit {
        for p in [discardedGrad, blockSums, shift] { p.deallocate() }
        for p in [totals, meanOffset, invStd] { p.deallocate() }
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    /// `weight` and `bias` under `prefix`, as PyTorch names them.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        var e: [(name: String, entry: StateEntry)] = []
        if let weight { e.append((prefix + "weight", .parameter(weight))) }
        if let bias { e.append((prefix + "bias", .parameter(bias))) }
        return e
    }

    /// The layer as messages name it; subclasses override.
    var context: String { "GroupNormalization" }

    /// The kernels' view of an input, after checking it; subclasses override.
    func layout(of x: Tensor) throws -> GroupNormShape { fatalError("subclass responsibility") }

    /// Room for `rows` statistics rows; grows only (a steady batch size allocates nothing).
    func reserveRows(_ rows: Int) {
        guard rows > rowCapacity else { return }
        shift.deallocate(); meanOffset.deallocate(); invStd.deallocate()
        shift = .allocate(capacity: rows); meanOffset = .allocate(capacity: rows); invStd = .allocate(capacity: rows)
        rowCapacity = rows
    }

    // MARK: - Forward / backward pair

    /// y from x, the same shape.
    public func forward(_ x: Tensor) throws -> Tensor { try _forward(x, relu: false) }

    /// max(0, y) from x: this layer and the ``ReLU`` after it in one pass
    /// (the clamp rides on the normalize pass). ``Sequential`` calls it for
    /// GroupNorm and LayerNorm (not InstanceNorm, whose forward differs).
    func forwardReLU(_ x: Tensor) throws -> Tensor { try _forward(x, relu: true) }

    /// Back-propagates ∂loss/∂(max(0, y)) through the ReLU and this layer
    /// after `forwardReLU`: dy masked by y > 0 where the kernel reads it.
    func backwardReLU(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try _backward(dy, needsInputGradient: needsInputGradient, relu: true)
    }

    func _forward(_ x: Tensor, relu: Bool) throws -> Tensor {
        let shape = try layout(of: x)
        reserveRows(shape.rows)
        let y = output._reuse(sameShapeAs: x)
        let gamma = weight?.value._pointer, beta = bias?.value._pointer
        if relu {
            GroupNormKernel.forwardReLU(x._pointer, shape: shape, gamma: gamma, beta: beta, eps: eps, output: y._pointer,
                                        shift: shift, meanOffset: meanOffset, invStd: invStd)
        } else {
            GroupNormKernel.forward(x._pointer, shape: shape, gamma: gamma, beta: beta, eps: eps, output: y._pointer,
                                    shift: shift, meanOffset: meanOffset, invStd: invStd)
        }
        input = x
        lastShape = shape
        usedFixedStatistics = false
        lastForwardFusedReLU = relu
        return y
    }

    /// dx from dy; accumulates dγ += Σdy·x̂ and dβ += Σdy.
    ///
    /// Per normalized group of M values, g = γ·dy:
    /// dx = (g − mean(g) − x̂·mean(g·x̂)) / √(Var[x] + ε).
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try _backward(dy, needsInputGradient: needsInputGradient, relu: false)
    }

    /// `relu`: dy is the gradient at the ReLU's output, masked by y > 0 (y,
    /// this layer's output, is the ReLU's output after `forwardReLU`).
    func _backward(_ dy: Tensor, needsInputGradient: Bool, relu: Bool) throws -> Tensor? {
        let y = try _checkGradient(dy, like: output, context: relu ? "\(context) → ReLU" : context)
        guard let x = input else { return nil }
        // γ and β gradients accumulate, or start from zero right after zeroGrad
        let gammaGrad = weight?._gradForAccumulation()
        // the kernel writes dγ and dβ together: dβ of a layer without bias goes nowhere
        let betaGrad = bias?._gradForAccumulation() ?? (gammaGrad == nil ? nil : discardedGrad)
        let dx = needsInputGradient ? gradInput._reuse(sameShapeAs: x) : nil
        if relu {
            GroupNormKernel.backwardReLU(gradOutput: dy._pointer, output: y._pointer, input: x._pointer, shape: lastShape,
                                         gamma: weight?.value._pointer,
                                         shift: shift, meanOffset: meanOffset, invStd: invStd,
                                         gradInput: dx?._pointer, gammaGrad: gammaGrad, betaGrad: betaGrad,
                                         totals: totals, blockSums: blockSums, fixedStatistics: usedFixedStatistics)
        } else {
            GroupNormKernel.backward(gradOutput: dy._pointer, input: x._pointer, shape: lastShape,
                                     gamma: weight?.value._pointer,
                                     shift: shift, meanOffset: meanOffset, invStd: invStd,
                                     gradInput: dx?._pointer, gammaGrad: gammaGrad, betaGrad: betaGrad,
                                     totals: totals, blockSums: blockSums, fixedStatistics: usedFixedStatistics)
        }
        return dx
    }
}

// MARK: - GroupNorm

/// Group normalization, `torch.nn.GroupNorm` (Wu & He, 2018, arXiv:1803.08494):
/// the C channels of each sample are split into `numGroups` groups of
/// consecutive channels, and each (sample, group) is normalized over its
/// (C / numGroups)·L values; γ and β are per channel.
///
/// - Input `(N, C, *)`: `(N, C)`, `(N, C, L)`, `(N, C, H, W)`, …; output the same.
/// - `numGroups: 1` normalizes each sample over all its values (LayerNorm over
///   `(C, *)` with per-channel γ, β); `numGroups: C` is instance normalization
///   (`torch.nn.InstanceNorm*d` with `affine: true`, `track_running_stats: false`).
/// - Parameters `weight` γ (1) and `bias` β (0), `[C]`, when `affine`.
public final class GroupNorm: _GroupNormalization {
    /// G, the number of groups.
    public let numGroups: Int
    /// C, the size of axis 1 of the input.
    public let numChannels: Int
    /// Whether γ and β are learned (default true).
    public let affine: Bool

    /// - Parameters:
    ///   - numGroups: G ≥ 1, dividing `numChannels`.
    ///   - numChannels: C ≥ 1.
    ///   - eps: added to the variance; must be > 0. Default 1e-5.
    ///   - affine: learn per-channel γ and β. Default true.
    public init(numGroups: Int, numChannels: Int, eps: Float = 1e-5, affine: Bool = true) throws {
        guard numChannels > 0 else {
            throw BatchNormKitError.invalidArgument(name: "numChannels", value: "\(numChannels)", requirement: "must be ≥ 1")
        }
        guard numGroups > 0, numChannels % numGroups == 0 else {
            throw BatchNormKitError.invalidArgument(name: "numGroups", value: "\(numGroups)",
                                                    requirement: "must be ≥ 1 and divide numChannels (\(numChannels))")
        }
        self.numGroups = numGroups
        self.numChannels = numChannels
        self.affine = affine
        try super.init(parameterShape: [numChannels], eps: eps, weight: affine, bias: affine)
    }

    override var context: String { "GroupNorm(\(numGroups), \(numChannels))" }

    override func layout(of x: Tensor) throws -> GroupNormShape {
        guard x.shape.count >= 2 else {
            throw BatchNormKitError.shapeMismatch(context: context, expected: "(N, \(numChannels), *)", got: x.shape)
        }
        guard x.shape[1] == numChannels else {
            throw BatchNormKitError.featureCountMismatch(context: context, expected: numChannels, got: x.shape[1])
        }
        guard x.count > 0 else { throw BatchNormKitError.emptyBatch(context: context) }
        return GroupNormShape(n: x.shape[0], c: numChannels, groups: numGroups, l: x.shape.dropFirst(2).reduce(1, *))
    }
}
