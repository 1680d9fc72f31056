/// The normalization after every convolution of a ``CNN``.
public enum CNNNormalization: Equatable, Sendable {
    /// BatchNorm2d after each convolution and BatchNorm1d after the hidden Linear (the default).
    case batchNorm
    /// `GroupNorm(groups, C)` after each convolution (Wu & He, 2018,
    /// arXiv:1803.08494); the classifier has no normalization, so nothing
    /// depends on the batch. `groups` must divide every block's channels.
    case groupNorm(groups: Int)
    /// `InstanceNorm2d(C, affine: true)` (batch statistics never kept) after
    /// each convolution; no normalization in the classifier.
    case instanceNorm
    /// No normalization anywhere.
    case none
}

/// The shape of a ``CNN``: everything needed to rebuild one before loading
/// its weights (stored in checkpoint metadata, see `CNN+Checkpoint.swift`).
public struct CNNArchitecture: Equatable, Sendable, CustomStringConvertible {
    /// Height and width of the (square) input images, 28 for Fashion-MNIST.
    public var imageSize: Int
    /// Channels of the input images, 1 for grey levels.
    public var inChannels: Int
    /// Output channels of each convolution block, `[32, 64]` by default.
    public var channels: [Int]
    /// Side of every convolution's square kernel (stride 1, no padding).
    public var kernelSize: Int
    /// Width of the hidden Linear layer of the classifier.
    public var hiddenSize: Int
    /// Output logits per sample.
    public var classes: Int
    /// What follows every convolution (and, for BatchNorm, the hidden Linear).
    public var normalization: CNNNormalization
    /// Whether ``normalization`` is BatchNorm (the layers folding removes).
    public var batchNorm: Bool { normalization == .batchNorm }

    /// The default: 28×28×1 → Conv 32 → Conv 64 (3×3) → Linear 128 → 10, with BatchNorm.
    public init(imageSize: Int = 28, inChannels: Int = 1, channels: [Int] = [32, 64], kernelSize: Int = 3,
                hiddenSize: Int = 128, classes: Int = 10, normalization: CNNNormalization = .batchNorm) {
        self.imageSize = imageSize
        self.inChannels = inChannels
        self.channels = channels
        self.kernelSize = kernelSize
        self.hiddenSize = hiddenSize
        self.classes = classes
        self.normalization = normalization
    }

    /// The side of the feature maps after every block (each: a valid
    /// convolution, then 2×2 max pooling), or nil when a block gets no pixel.
    public var featureMapSides: [Int]? {
        var side = imageSize, sides: [Int] = []
        for _ in channels {
            side = (side - kernelSize + 1) / 2
            guard side >= 1 else { return nil }
            sides.append(side)
        }
        return sides
    }

    /// Inputs of the classifier's first Linear: channels·side² of the last block.
    public var flattenedFeatures: Int? {
        guard let side = featureMapSides?.last ?? (channels.isEmpty ? imageSize : nil) else { return nil }
        return (channels.last ?? inChannels) * side * side
    }

    /// E.g. `28×28×1 → conv 32 → conv 64 (3×3, max-pool 2) → 128 → 10, BatchNorm`.
    /// `BatchNorm`, `GroupNorm(8 groups)`, `InstanceNorm`, `no normalization`.
    var normalizationDescription: String {
        switch normalization {
        case .batchNorm: "BatchNorm"
        case let .groupNorm(groups): "GroupNorm(\(groups) groups)"
        case .instanceNorm: "InstanceNorm"
        case .none: "no normalization"
        }
    }

    public var description: String {
        "\(imageSize)×\(imageSize)×\(inChannels) → " + channels.map { "conv \($0)" }.joined(separator: " → ")
            + " (\(kernelSize)×\(kernelSize), max-pool 2) → \(hiddenSize) → \(classes), " + normalizationDescription
    }
}

/// A small convolutional network for 28×28 images, in the seed lesson's
/// spirit — BatchNorm after every convolution and after the hidden Linear,
/// before its ReLU (Ioffe & Szegedy, 2015, §3.2):
///
///     (N, 784) → (N, 1, 28, 28)
///     features:   Conv2d(1→32, 3) → BatchNorm2d(32) → ReLU → MaxPool2d(2)      (N, 32, 13, 13)
///                 Conv2d(32→64, 3) → BatchNorm2d(64) → ReLU → MaxPool2d(2)     (N, 64, 5, 5)
///                 Flatten                                                       (N, 1600)
///     classifier: Linear(1600→128) → BatchNorm1d(128) → ReLU → Linear(128→10)  logits (N, 10)
///
/// State names are PyTorch's for a module with `features` and `classifier`
/// Sequentials (`features.0.weight` `[32, 1, 3, 3]`, `features.1.running_mean`,
/// `classifier.0.weight` `[128, 1600]`, …); `Scripts/train_cnn_torch.py`
/// defines the same module. Input: flattened images `(N, C·H·W)` (what
/// ``Trainer`` feeds) or `(N, C, H, W)`.
public final class CNN: Layer {
    /// The convolution blocks and the Flatten; state names `features.<i>.<name>`.
    public let features: Sequential
    /// Linear → BatchNorm1d → ReLU → Linear; state names `classifier.<i>.<name>`.
    public let classifier: Sequential
    /// The shape this network was built with.
    public let architecture: CNNArchitecture
    private let unflatten: Unflatten
    private var flatInput = false

    /// - Parameters:
    ///   - architecture: the widths and sizes (the default network by default).
    ///   - seed: fixes every initial weight (PyTorch's default init per layer).
    ///   - processGroup: for data-parallel training, SyncBatchNorm over these
    ///     ranks instead of BatchNorm2d/BatchNorm1d (same state names).
    /// - Throws: `invalidArgument` for sizes below 1, images too small for
    ///   the blocks, or GroupNorm groups that do not divide a block's channels.
    public init(_ architecture: CNNArchitecture = CNNArchitecture(), seed: UInt64 = 0,
                processGroup: ProcessGroup? = nil) throws {
        let a = architecture
        for (name, value) in [("imageSize", a.imageSize), ("inChannels", a.inChannels), ("kernelSize", a.kernelSize),
                              ("hiddenSize", a.hiddenSize), ("classes", a.classes)] {
            try _requireAtLeast(1, name, value)
        }
        guard let flattened = a.flattenedFeatures else {
            throw BatchNormKitError.invalidArgument(
                name: "imageSize", value: "\(a.imageSize)",
                requirement: "too small for \(a.channels.count) blocks of a \(a.kernelSize)×\(a.kernelSize) convolution and 2×2 max pooling")
        }
        func norm(_ features: Int, image: Bool) throws -> Layer? {
            switch a.normalization {
            case .batchNorm:
                if let processGroup { return try SyncBatchNorm(numFeatures: features, processGroup: processGroup) }
                return image ? try BatchNorm2d(numFeatures: features) : try BatchNorm1d(numFeatures: features)
            case let .groupNorm(groups): return image ? try GroupNorm(numGroups: groups, numChannels: features) : nil
            case .instanceNorm: return image ? try InstanceNorm2d(numFeatures: features, affine: true) : nil
            case .none: return nil
            }
        }
        var generator = SplitMix64(seed: seed)
        var blocks: [Layer] = [], width = a.inChannels
        for out in a.channels {
            blocks.append(try Conv2d(inChannels: width, outChannels: out, kernelSize: a.kernelSize, generator: &generator))
            if let layer = try norm(out, image: true) { blocks.append(layer) }
            blocks += [ReLU(), try MaxPool2d(kernelSize: 2)]
            width = out
        }
        blocks.append(Flatten())
        var head: [Layer] = [try Linear(inFeatures: flattened, outFeatures: a.hiddenSize, generator: &generator)]
        if let layer = try norm(a.hiddenSize, image: false) { head.append(layer) }
        head += [ReLU(), try Linear(inFeatures: a.hiddenSize, outFeatures: a.classes, generator: &generator)]
        features = Sequential(blocks)
        classifier = Sequential(head)
        unflatten = try Unflatten(sizes: [a.inChannels, a.imageSize, a.imageSize])
        self.architecture = a
    }

    public var isTraining: Bool { features.isTraining }
    public func setTraining(_ training: Bool) { features.setTraining(training); classifier.setTraining(training) }

    /// Logits `(N, classes)` from `(N, C·H·W)` or `(N, C, H, W)` images.
    public func forward(_ input: Tensor) throws -> Tensor {
        flatInput = input.shape.count == 2
        let images = flatInput ? try unflatten.forward(input) : input
        return try classifier.forward(try features.forward(images))
    }

    /// Back-propagates ∂loss/∂logits `(N, classes)`; ∂loss/∂input in the
    /// input's shape when `needsInputGradient` (the first convolution skips
    /// its input gradient otherwise).
    public func backward(_ gradOutput: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let toFeatures = try classifier.backward(gradOutput, needsInputGradient: true) else { return nil }
        guard let toImages = try features.backward(toFeatures, needsInputGradient: needsInputGradient) else { return nil }
        return flatInput ? try unflatten.backward(toImages, needsInputGradient: true) : toImages
    }

    /// `features.<i>.<name>` then `classifier.<i>.<name>`, as PyTorch's `state_dict()`.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        features.namedStateEntries(prefix: prefix + "features.") + classifier.namedStateEntries(prefix: prefix + "classifier.")
    }
}
