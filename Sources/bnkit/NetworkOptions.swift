import ArgumentParser
import BatchNormKit

/// `--norm batchnorm|layernorm|groupnorm|none` of `bnkit train`.
enum NetworkNormChoice: String, ExpressibleByArgument, CaseIterable {
    case batchnorm, layernorm, groupnorm, none
    var kind: NormKind { NormKind(rawValue: rawValue)! }
}

extension ActivationKind: ExpressibleByArgument {}

/// The architecture flags of `bnkit train` beyond `--norm` and `--placement`.
/// Left at their defaults with `--norm batchnorm|none`, the seed network is
/// built exactly as before; anything else builds a ``FeedForwardNetwork``.
struct NetworkOptions: ParsableArguments {
    @Option(help: "Activation of every hidden block.")
    var activation: ActivationKind = .relu
    @Option(help: "Hidden blocks (default: the seed's two, 256 and 64 wide).")
    var depth: Int?
    @Option(help: "Units per hidden block (with --depth; default 256).")
    var width: Int?
    @Option(help: "Dropout probability after every hidden block.")
    var dropout: Float = 0
    @Option(help: "AlphaDropout probability after every hidden block (for --activation selu).")
    var alphaDropout: Float = 0
    @Option(help: "Every Linear weight is PyTorch's default init times this.")
    var initScale: Float = 1
    @Option(help: "Groups of --norm groupnorm (must divide every width).")
    var groups: Int = 8

    func validate() throws {
        if let depth, depth < 0 { throw ValidationError("--depth must be ≥ 0, got \(depth)") }
        if let width, width < 1 { throw ValidationError("--width must be ≥ 1, got \(width)") }
        guard dropout >= 0, dropout < 1, alphaDropout >= 0, alphaDropout < 1 else {
            throw ValidationError("--dropout and --alpha-dropout must be in [0, 1)")
        }
        guard dropout == 0 || alphaDropout == 0 else { throw ValidationError("choose --dropout or --alpha-dropout, not both") }
        guard initScale.isFinite, initScale > 0 else { throw ValidationError("--init-scale must be a finite number > 0") }
    }

    /// Whether these flags (with `norm`) ask for more than the seed network.
    func needsBuilder(norm: NetworkNormChoice) -> Bool {
        norm == .layernorm || norm == .groupnorm || activation != .relu || depth != nil || width != nil
            || dropout > 0 || alphaDropout > 0 || initScale != 1
    }

    /// The spec these flags describe.
    func spec(inputSize: Int, norm: NetworkNormChoice, placement: NormPlacement) -> NetworkSpec {
        let hidden = depth == nil && width == nil ? [256, 64] : Array(repeating: width ?? 256, count: depth ?? 2)
        return NetworkSpec(inputSize: inputSize, hiddenSizes: hidden, classes: MNISTDataset.classCount, norm: norm.kind,
                           placement: placement, activation: activation, dropout: dropout, alphaDropout: alphaDropout,
                           initScale: initScale, groups: groups)
    }

    /// The network to train: the seed network, or the built one.
    func makeModel(inputSize: Int, norm: NetworkNormChoice, placement: NormPlacement, seed: UInt64,
                   processGroup: ProcessGroup?) throws -> Layer {
        guard needsBuilder(norm: norm) else {
            return try SeedNetwork(inputSize: inputSize, classes: MNISTDataset.classCount, batchNorm: norm == .batchnorm,
                                   placement: placement, seed: seed, processGroup: processGroup)
        }
        guard processGroup == nil else {
            throw BatchNormKitError.invalidArgument(name: "--ranks", value: "> 1", requirement: "only for the seed network (no --depth, --width, --activation, dropout or other norms)")
        }
        return try FeedForwardNetwork(spec: spec(inputSize: inputSize, norm: norm, placement: placement), seed: seed)
    }
}

/// What `bnkit train` prints after `model`.
func describeModel(_ model: Layer) -> String {
    if let seed = model as? SeedNetwork { return "\(seed.architecture)" }
    if let built = model as? FeedForwardNetwork { return "\(built.spec)" }
    if let cnn = model as? CNN { return "CNN \(cnn.architecture)" }
    return "\(type(of: model))"
}
