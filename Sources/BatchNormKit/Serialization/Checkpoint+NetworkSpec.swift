// A ``FeedForwardNetwork``'s architecture in checkpoint metadata, e.g.
// `architecture=FeedForwardNetwork, input_size=784, hidden_sizes=128,128,128,
// classes=10, norm=layernorm, placement=before, activation=gelu, dropout=0.1,
// alpha_dropout=0, init_scale=1, groups=8` — and loading either kind of
// network (this one or a ``SeedNetwork``) from a file.

extension NetworkSpec {
    /// The `architecture` value that marks a ``FeedForwardNetwork`` checkpoint.
    public static let architectureName = "FeedForwardNetwork"

    /// The metadata entries that describe this architecture.
    public var metadata: [String: String] {
        ["architecture": Self.architectureName,
         "input_size": "\(inputSize)",
         "hidden_sizes": hiddenSizes.map(String.init).joined(separator: ","),
         "classes": "\(classes)",
         "norm": norm.rawValue,
         "placement": placement.rawValue,
         "activation": activation.rawValue,
         "dropout": "\(dropout)",
         "alpha_dropout": "\(alphaDropout)",
         "init_scale": "\(initScale)",
         "groups": "\(groups)"]
    }

    /// Reads ``metadata`` back; nil unless `architecture` is `FeedForwardNetwork`.
    ///
    /// - Throws: `BatchNormKitError.fileFormat` naming `path` for a missing or malformed entry.
    public init?(metadata: [String: String], path: String) throws {
        guard metadata["architecture"] == Self.architectureName else { return nil }
        func fail(_ key: String, _ expected: String) -> BatchNormKitError {
            .fileFormat(path: path, reason: "metadata: \(key) is \(metadata[key].map { "\"\($0)\"" } ?? "missing"), expected \(expected)")
        }
        func integer(_ key: String) throws -> Int {
            guard let value = metadata[key].flatMap({ Int($0) }), value > 0 else { throw fail(key, "a positive integer") }
            return value
        }
        func real(_ key: String) throws -> Float {
            guard let value = metadata[key].flatMap({ Float($0) }), value.isFinite else { throw fail(key, "a finite number") }
            return value
        }
        let hiddenText = metadata["hidden_sizes"] ?? ""
        let hidden = hiddenText.isEmpty ? [] : hiddenText.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        guard metadata["hidden_sizes"] != nil, hidden.allSatisfy({ $0 > 0 }) else {
            throw fail("hidden_sizes", "a comma-separated list of positive integers")
        }
        guard let norm = metadata["norm"].flatMap(NormKind.init(rawValue:)) else {
            throw fail("norm", NormKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let placement = metadata["placement"].flatMap(NormPlacement.init(rawValue:)) else { throw fail("placement", "before or after") }
        guard let activation = metadata["activation"].flatMap(ActivationKind.init(rawValue:)) else {
            throw fail("activation", ActivationKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self.init(inputSize: try integer("input_size"), hiddenSizes: hidden, classes: try integer("classes"), norm: norm,
                  placement: placement, activation: activation, dropout: try real("dropout"),
                  alphaDropout: try real("alpha_dropout"), initScale: try real("init_scale"), groups: try integer("groups"))
        do { try validate() } catch { throw BatchNormKitError.fileFormat(path: path, reason: "metadata: \(error)") }
    }
}

/// Rebuilds whichever network a checkpoint describes — a ``CNN`` (from its
/// metadata or its PyTorch names), a ``FeedForwardNetwork`` from its metadata,
/// else a ``SeedNetwork`` (from metadata or, for a PyTorch file, from tensor
/// names) — and loads it strictly. Training mode.
///
/// - Throws: `fileFormat` for bad metadata, `checkpointMismatch` when the
///   tensors do not fit the architecture.
public func loadCheckpointNetwork(stateDict file: SafeTensorsFile, path: String = "state dict") throws -> (network: Layer, description: String) {
    if CNNArchitecture.describes(file) {
        let network = try CNN(stateDict: file, path: path)
        return (network, "CNN \(network.architecture)")
    }
    guard let spec = try NetworkSpec(metadata: file.metadata, path: path) else {
        let network = try SeedNetwork(stateDict: file, path: path)
        return (network, "\(network.architecture)")
    }
    // refuse metadata claiming more values than the file holds before allocating them
    let widths = [spec.inputSize] + spec.hiddenSizes + [spec.classes]
    let needed = zip(widths, widths.dropFirst()).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    let held = file.tensors.values.reduce(0.0) { $0 + Double($1.bytes.count) / 4 }
    guard needed <= held else {
        throw BatchNormKitError.fileFormat(path: path, reason: "the architecture it describes (\(spec)) needs more values than the file holds")
    }
    let network = try FeedForwardNetwork(spec: spec)
    try network.loadStateDict(file, path: path)
    return (network, "\(spec)")
}
