/// Where BatchNorm sits in a hidden block: the seed lesson's two variants.
public enum NormPlacement: String, CaseIterable, Sendable {
    /// Linear → BatchNorm1d → ReLU (the paper's and the lesson's advice).
    case before
    /// Linear → ReLU → BatchNorm1d.
    case after
}

/// The seed lesson's network, `MyNetwork` without its final Softmax:
///
///     784 → Linear 256 → BatchNorm1d → ReLU → Linear 64 → BatchNorm1d → ReLU → Linear 10
///
/// Its state names match PyTorch's (`layers.0.weight`, `layers.1.running_mean`,
/// …), so checkpoints move between the two. Output: logits `(N, 10)`;
/// ``probabilities(_:)`` applies the lesson's Softmax.
public final class SeedNetwork: Layer {
    /// The layer stack; state names are `layers.<index>.<name>`.
    public let layers: Sequential
    /// Widths of the hidden blocks, `[256, 64]` for the seed.
    public let hiddenSizes: [Int]
    /// Whether the hidden blocks have BatchNorm1d.
    public let useBatchNorm: Bool
    /// BatchNorm before or after each ReLU.
    public let placement: NormPlacement
    private let softmax = Softmax()

    /// - Parameters:
    ///   - inputSize: features per sample (784 for 28×28 images).
    ///   - hiddenSizes: widths of the hidden blocks (256, 64).
    ///   - classes: output logits (10).
    ///   - batchNorm: false builds the same network without normalization.
    ///   - placement: BatchNorm before or after each ReLU.
    ///   - seed: fixes every initial weight.
    ///   - processGroup: for data-parallel training, SyncBatchNorm over these
    ///     ranks instead of BatchNorm1d (same state names).
    public init(inputSize: Int = 784, hiddenSizes: [Int] = [256, 64], classes: Int = 10,
                batchNorm: Bool = true, placement: NormPlacement = .before, seed: UInt64 = 0,
                processGroup: ProcessGroup? = nil) throws {
        var generator = SplitMix64(seed: seed)
        var stack: [Layer] = []
        var width = inputSize
        for hidden in hiddenSizes {
            stack.append(try Linear(inFeatures: width, outFeatures: hidden, generator: &generator))
            let norm: Layer? = !batchNorm ? nil
                : try processGroup.map { try SyncBatchNorm(numFeatures: hidden, processGroup: $0) } ?? BatchNorm1d(numFeatures: hidden)
            switch (norm, placement) {
            case let (norm?, .before): stack += [norm, ReLU()]
            case let (norm?, .after): stack += [ReLU(), norm]
            case (nil, _): stack.append(ReLU())
            }
            width = hidden
        }
        stack.append(try Linear(inFeatures: width, outFeatures: classes, generator: &generator))
        layers = Sequential(stack)
        self.hiddenSizes = hiddenSizes
        useBatchNorm = batchNorm
        self.placement = placement
    }

    /// Seed-lesson blocks: Linear→BN→ReLU ("before") or Linear→ReLU→BN ("after").
    public static func block(inFeatures: Int, outFeatures: Int, placement: NormPlacement, seed: UInt64 = 0) throws -> Sequential {
        let linear = try Linear(inFeatures: inFeatures, outFeatures: outFeatures, seed: seed)
        let norm = try BatchNorm1d(numFeatures: outFeatures)
        return placement == .before ? Sequential(linear, norm, ReLU()) : Sequential(linear, ReLU(), norm)
    }

    public var isTraining: Bool { layers.isTraining }
    public func setTraining(_ training: Bool) { layers.setTraining(training) }

    /// Logits `(N, classes)` for input `(N, inputSize)`.
    public func forward(_ input: Tensor) throws -> Tensor { try layers.forward(input) }

    /// Class probabilities `(N, classes)`: the lesson's final Softmax.
    public func probabilities(_ input: Tensor) throws -> Tensor { try softmax.forward(try forward(input)) }

    /// Back-propagates ∂loss/∂logits `(N, classes)` through every layer.
    public func backward(_ gradOutput: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try layers.backward(gradOutput, needsInputGradient: needsInputGradient)
    }

    /// Every layer's entries as `layers.<index>.<name>`, PyTorch's `MyNetwork` names.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        layers.namedStateEntries(prefix: prefix + "layers.")
    }
}
