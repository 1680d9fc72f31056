// Networks of any depth and width for the lab and `bnkit train`: a stack of
// hidden blocks, each Linear with an optional normalization before or after
// its activation and an optional dropout, then a Linear head to the logits.

/// The normalization inside each hidden block.
public enum NormKind: String, CaseIterable, Sendable {
    /// ``BatchNorm1d`` over the batch (statistics per feature).
    case batchnorm
    /// ``LayerNorm`` over each sample's features.
    case layernorm
    /// ``GroupNorm`` over groups of each sample's features.
    case groupnorm
    /// No normalization.
    case none
}

/// The activation of each hidden block.
public enum ActivationKind: String, CaseIterable, Sendable {
    case relu, sigmoid, tanh, selu, gelu, leakyrelu

    /// A fresh layer of this kind (LeakyReLU with PyTorch's slope 0.01).
    public func makeLayer() throws -> Layer {
        switch self {
        case .relu: ReLU()
        case .sigmoid: Sigmoid()
        case .tanh: Tanh()
        case .selu: SELU()
        case .gelu: GELU()
        case .leakyrelu: try LeakyReLU()
        }
    }
}

/// Everything that defines a ``FeedForwardNetwork`` before its weights:
///
///     input → [Linear → norm → act → dropout] × hidden → Linear → logits   (placement .before)
///     input → [Linear → act → norm → dropout] × hidden → Linear → logits   (placement .after)
///
/// The defaults are the seed network: 784 → 256 → 64 → 10, BatchNorm before ReLU.
public struct NetworkSpec: Equatable, Sendable, CustomStringConvertible {
    /// Features per sample.
    public var inputSize: Int
    /// Widths of the hidden Linear layers, one block each.
    public var hiddenSizes: [Int]
    /// Output logits.
    public var classes: Int
    /// Normalization per hidden block.
    public var norm: NormKind
    /// Normalization before or after the activation.
    public var placement: NormPlacement
    /// Activation per hidden block.
    public var activation: ActivationKind
    /// ``Dropout`` probability after each hidden block (0: none).
    public var dropout: Float
    /// ``AlphaDropout`` probability after each hidden block (0: none); not with ``dropout``.
    public var alphaDropout: Float
    /// Every Linear weight is PyTorch's default init (U(−1/√in, 1/√in)) times this; biases unscaled.
    public var initScale: Float
    /// Groups of ``NormKind/groupnorm`` (must divide every hidden width).
    public var groups: Int

    public init(inputSize: Int = 784, hiddenSizes: [Int] = [256, 64], classes: Int = 10,
                norm: NormKind = .batchnorm, placement: NormPlacement = .before, activation: ActivationKind = .relu,
                dropout: Float = 0, alphaDropout: Float = 0, initScale: Float = 1, groups: Int = 8) {
        self.inputSize = inputSize
        self.hiddenSizes = hiddenSizes
        self.classes = classes
        self.norm = norm
        self.placement = placement
        self.activation = activation
        self.dropout = dropout
        self.alphaDropout = alphaDropout
        self.initScale = initScale
        self.groups = groups
    }

    /// `depth` hidden blocks of `width` units.
    public init(inputSize: Int = 784, depth: Int, width: Int, classes: Int = 10, norm: NormKind = .batchnorm,
                placement: NormPlacement = .before, activation: ActivationKind = .relu) {
        self.init(inputSize: inputSize, hiddenSizes: Array(repeating: width, count: max(depth, 0)), classes: classes,
                  norm: norm, placement: placement, activation: activation)
    }

    /// E.g. `784 → 256 → 64 → 10, batchnorm before relu, dropout 0.2`.
    public var description: String {
        var text = ([inputSize] + hiddenSizes + [classes]).map(String.init).joined(separator: " → ")
        text += norm == .none ? ", no norm, \(activation.rawValue)" : ", \(norm.rawValue) \(placement.rawValue) \(activation.rawValue)"
        if norm == .groupnorm { text += " (\(groups) groups)" }
        if dropout > 0 { text += ", dropout \(dropout)" }
        if alphaDropout > 0 { text += ", alpha dropout \(alphaDropout)" }
        if initScale != 1 { text += ", init ×\(initScale)" }
        return text
    }

    /// Throws `invalidArgument` for a size < 1, a probability outside [0, 1),
    /// both dropouts at once, a non-finite or non-positive init scale, or groups not dividing a width.
    public func validate() throws {
        func fail(_ name: String, _ value: Any, _ requirement: String) -> BatchNormKitError {
            .invalidArgument(name: name, value: "\(value)", requirement: requirement)
        }
        guard inputSize >= 1 else { throw fail("inputSize", inputSize, "must be ≥ 1") }
        guard classes >= 1 else { throw fail("classes", classes, "must be ≥ 1") }
        guard hiddenSizes.allSatisfy({ $0 >= 1 }) else { throw fail("hidden sizes", hiddenSizes, "must each be ≥ 1") }
        for (name, p) in [("dropout", dropout), ("alpha dropout", alphaDropout)] where !(p >= 0 && p < 1) {
            throw fail(name, p, "must be in [0, 1)")
        }
        guard dropout == 0 || alphaDropout == 0 else { throw fail("dropout", dropout, "choose dropout or alpha dropout, not both") }
        guard initScale.isFinite, initScale > 0 else { throw fail("init scale", initScale, "must be finite and > 0") }
        if norm == .groupnorm {
            guard groups >= 1, hiddenSizes.allSatisfy({ $0 % groups == 0 }) else {
                throw fail("groups", groups, "must be ≥ 1 and divide every hidden width \(hiddenSizes)")
            }
        }
    }
}

/// A network built from a ``NetworkSpec``. State names are PyTorch's for the
/// equivalent `nn.Sequential` under `layers.` (`layers.0.weight`, …): the
/// seed spec gives exactly ``SeedNetwork``'s names and, for the same seed,
/// the same initial weights.
///
/// Probes: with ``probesEnabled`` each forward keeps a reference to every
/// layer's output (no copy, no allocation: the tensors are the layers' own
/// buffers), read by ``preActivation(block:)``, ``activationOutput(block:)``
/// and ``layerInput(block:)`` until the next forward. Off by default.
public final class FeedForwardNetwork: Layer {
    /// Where one hidden block's layers sit in ``layers``.
    public struct Block: Sendable {
        public let linear: Int
        public let norm: Int?
        public let activation: Int
        public let dropout: Int?
    }

    /// What the network was built from.
    public let spec: NetworkSpec
    /// The layer stack; state names are `layers.<index>.<name>`.
    public let layers: Sequential
    /// The hidden blocks, in order.
    public let blocks: [Block]
    /// Keep references to every layer's output on each forward (see the type's documentation).
    public var probesEnabled = false
    private var outputs: [Tensor?]
    private var lastInput: Tensor?

    /// - Parameters:
    ///   - spec: the architecture (checked by ``NetworkSpec/validate()``).
    ///   - seed: every initial weight (drawn in layer order from SplitMix64) and the dropout masks.
    public init(spec: NetworkSpec, seed: UInt64 = 0) throws {
        try spec.validate()
        var generator = SplitMix64(seed: seed)
        var stack: [Layer] = [], blocks: [Block] = []
        var width = spec.inputSize
        func linear(_ inputs: Int, _ outputs: Int) throws -> Linear {
            let layer = try Linear(inFeatures: inputs, outFeatures: outputs, generator: &generator)
            if spec.initScale != 1 { layer.weight.value.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= spec.initScale } } }
            return layer
        }
        for (index, hidden) in spec.hiddenSizes.enumerated() {
            let linearIndex = stack.count
            stack.append(try linear(width, hidden))
            let norm: Layer? = switch spec.norm {
            case .batchnorm: try BatchNorm1d(numFeatures: hidden)
            case .layernorm: try LayerNorm(normalizedShape: [hidden])
            case .groupnorm: try GroupNorm(numGroups: spec.groups, numChannels: hidden)
            case .none: nil
            }
            var normIndex: Int?
            if let norm, spec.placement == .before { normIndex = stack.count; stack.append(norm) }
            let activationIndex = stack.count
            stack.append(try spec.activation.makeLayer())
            if let norm, spec.placement == .after { normIndex = stack.count; stack.append(norm) }
            var dropoutIndex: Int?
            let maskSeed = seed &+ 0x9E37_79B9 &* UInt64(index + 1)
            if spec.dropout > 0 { dropoutIndex = stack.count; stack.append(try Dropout(p: spec.dropout, seed: maskSeed)) }
            if spec.alphaDropout > 0 { dropoutIndex = stack.count; stack.append(try AlphaDropout(p: spec.alphaDropout, seed: maskSeed)) }
            blocks.append(Block(linear: linearIndex, norm: normIndex, activation: activationIndex, dropout: dropoutIndex))
            width = hidden
        }
        stack.append(try linear(width, spec.classes))
        self.spec = spec
        self.blocks = blocks
        layers = Sequential(stack)
        outputs = Array(repeating: nil, count: stack.count)
    }

    public var isTraining: Bool { layers.isTraining }
    public func setTraining(_ training: Bool) { layers.setTraining(training) }

    /// Logits `(N, classes)` for input `(N, inputSize)`.
    public func forward(_ input: Tensor) throws -> Tensor {
        guard probesEnabled else { return try layers.forward(input) }
        lastInput = input
        var x = input
        for (i, layer) in layers.layers.enumerated() {
            x = try layer.forward(x)
            outputs[i] = x
        }
        return x
    }

    /// Back-propagates ∂loss/∂logits `(N, classes)` through every layer.
    public func backward(_ gradOutput: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try layers.backward(gradOutput, needsInputGradient: needsInputGradient)
    }

    /// `layers.<index>.<name>`, as PyTorch's `nn.Sequential` inside a module attribute `layers`.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        layers.namedStateEntries(prefix: prefix + "layers.")
    }

    // MARK: - Probes (need probesEnabled during the forward)

    /// What layer `index` received in the last forward.
    private func input(ofLayer index: Int) -> Tensor? { index == 0 ? lastInput : outputs[index - 1] }

    /// The activation's input of hidden block `block` in the last forward `(N, width)`.
    public func preActivation(block: Int) -> Tensor? { input(ofLayer: blocks[block].activation) }
    /// The activation's output of hidden block `block` in the last forward `(N, width)`.
    public func activationOutput(block: Int) -> Tensor? { outputs[blocks[block].activation] }
    /// What hidden block `block`'s Linear received in the last forward `(N, in)`: the layer's covariates.
    public func layerInput(block: Int) -> Tensor? { input(ofLayer: blocks[block].linear) }
    /// What hidden block `block`'s normalization received in the last forward, nil without one.
    public func normInput(block: Int) -> Tensor? { blocks[block].norm.flatMap { input(ofLayer: $0) } }

    /// The Linear layers, hidden blocks first, the head last.
    public var linears: [Linear] { layers.layers.compactMap { $0 as? Linear } }

    /// ‖∂loss/∂W‖₂ (Frobenius) of every Linear, hidden blocks first then the head,
    /// from the gradients the last backward left (read between backward and zeroGrad).
    public func weightGradientNorms() -> [Double] {
        linears.map { linear in
            linear.weight.grad.withUnsafeBufferPointer { g in g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        }
    }
}

/// Mean and (biased) variance of every value of a tensor, in Double.
public struct ValueStatistics: Sendable, Equatable {
    public let mean: Double
    public let variance: Double

    /// Over all values of `tensor`.
    public init(of tensor: Tensor) {
        var sum = 0.0, squares = 0.0
        tensor.withUnsafeBufferPointer { for v in $0 { sum += Double(v); squares += Double(v) * Double(v) } }
        let n = Double(max(tensor.count, 1))
        mean = sum / n
        variance = max(0, squares / n - mean * mean)
    }

    /// Per column of `(N, C)` values: C means and C biased variances.
    public static func columns(of tensor: Tensor) -> (means: [Double], variances: [Double]) {
        let n = tensor.shape.first ?? 0, c = tensor.count / max(n, 1)
        var sums = [Double](repeating: 0, count: c), squares = sums
        tensor.withUnsafeBufferPointer { p in
            for row in 0..<n { for j in 0..<c { let v = Double(p[row * c + j]); sums[j] += v; squares[j] += v * v } }
        }
        let means = sums.map { $0 / Double(max(n, 1)) }
        return (means, zip(squares, means).map { max(0, $0 / Double(max(n, 1)) - $1 * $1) })
    }
}
