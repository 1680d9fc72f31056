// Which network a checkpoint belongs to. BatchNormKit writes it into the
// safetensors `__metadata__`; a file written by PyTorch has none, and the
// architecture is then read off the state names and shapes instead.

// MARK: - NetworkArchitecture

/// The shape of a ``SeedNetwork``: everything needed to rebuild one before
/// loading its weights.
///
/// Stored in a checkpoint's metadata as strings, e.g.
/// `architecture=SeedNetwork, input_size=784, hidden_sizes=256,64,
/// classes=10, norm=batchnorm, placement=before`.
public struct NetworkArchitecture: Equatable, Sendable, CustomStringConvertible {
    /// Features per sample (784 for 28×28 images).
    public var inputSize: Int
    /// Widths of the hidden Linear layers, e.g. `[256, 64]`.
    public var hiddenSizes: [Int]
    /// Output logits per sample.
    public var classes: Int
    /// Whether each hidden block has a BatchNorm1d.
    public var batchNorm: Bool
    /// Where the BatchNorm sits (meaningless when ``batchNorm`` is false).
    public var placement: NormPlacement

    /// The seed network by default: 784 → 256 → 64 → 10 with BatchNorm before ReLU.
    public init(inputSize: Int = 784, hiddenSizes: [Int] = [256, 64], classes: Int = 10,
                batchNorm: Bool = true, placement: NormPlacement = .before) {
        self.inputSize = inputSize
        self.hiddenSizes = hiddenSizes
        self.classes = classes
        self.batchNorm = batchNorm
        self.placement = placement
    }

    /// E.g. `784 → 256 → 64 → 10, BatchNorm before ReLU`.
    public var description: String {
        let widths = ([inputSize] + hiddenSizes + [classes]).map(String.init).joined(separator: " → ")
        return widths + (batchNorm ? ", BatchNorm \(placement.rawValue) ReLU" : ", no BatchNorm")
    }

    // MARK: - Metadata

    /// The metadata entries that describe this architecture.
    public var metadata: [String: String] {
        ["architecture": "SeedNetwork",
         "input_size": "\(inputSize)",
         "hidden_sizes": hiddenSizes.map(String.init).joined(separator: ","),
         "classes": "\(classes)",
         "norm": batchNorm ? "batchnorm" : "none",
         "placement": placement.rawValue]
    }

    /// Reads ``metadata`` back. Returns nil when there is no `architecture`
    /// entry (a file written by PyTorch).
    ///
    /// - Parameters:
    ///   - metadata: a checkpoint's `__metadata__`.
    ///   - path: names the file in error messages.
    /// - Throws: `BatchNormKitError.fileFormat` for an entry that is missing or malformed.
    public init?(metadata: [String: String], path: String) throws {
        guard let kind = metadata["architecture"] else { return nil }
        func fail(_ reason: String) -> BatchNormKitError { .fileFormat(path: path, reason: "metadata: \(reason)") }
        guard kind == "SeedNetwork" else { throw fail("unknown architecture \"\(kind)\" (expected SeedNetwork)") }
        func positive(_ key: String) throws -> Int {
            guard let text = metadata[key], let value = Int(text), value > 0 else {
                throw fail("\(key) is \(metadata[key].map { "\"\($0)\"" } ?? "missing"), expected a positive integer")
            }
            return value
        }
        let hiddenText = metadata["hidden_sizes"] ?? ""
        let hidden = hiddenText.isEmpty ? [] : hiddenText.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        guard metadata["hidden_sizes"] != nil, hidden.allSatisfy({ $0 > 0 }) else {
            throw fail("hidden_sizes \"\(hiddenText)\" is not a comma-separated list of positive integers")
        }
        let norm = metadata["norm"]
        guard norm == "batchnorm" || norm == "none" else {
            throw fail("norm is \(norm.map { "\"\($0)\"" } ?? "missing"), expected batchnorm or none")
        }
        guard let placement = NormPlacement(rawValue: metadata["placement"] ?? "before") else {
            throw fail("placement \"\(metadata["placement"]!)\", expected before or after")
        }
        self.init(inputSize: try positive("input_size"), hiddenSizes: hidden, classes: try positive("classes"),
                  batchNorm: norm == "batchnorm", placement: placement)
    }

    // MARK: - Inference from PyTorch names

    /// Reads the architecture off PyTorch state names `layers.<i>.<name>`:
    /// 2-D `weight`s are Linear layers (inputs, hidden sizes and classes come
    /// from their shapes), `running_mean` marks a BatchNorm1d. Placement
    /// follows from the indices: BatchNorm right after its Linear
    /// (`layers.0` → `layers.1`) is "before" the ReLU, one further
    /// (`layers.0` → `layers.2`) is "after"; with no BatchNorm the default
    /// "before" is reported. Names outside that pattern are ignored here;
    /// strict loading reports them.
    ///
    /// - Throws: `BatchNormKitError.fileFormat` when there is no Linear
    ///   weight to read the sizes from.
    public init(inferringFrom file: SafeTensorsFile, path: String) throws {
        var linears: [(index: Int, shape: [Int])] = []
        var norms: [Int] = []
        for (name, tensor) in file._seedNetworkNames().tensors {
            let parts = name.split(separator: ".")
            guard parts.count == 3, parts[0] == "layers", let index = Int(parts[1]) else { continue }
            if parts[2] == "weight" && tensor.shape.count == 2 { linears.append((index, tensor.shape)) }
            if parts[2] == "running_mean" { norms.append(index) }
        }
        linears.sort { $0.index < $1.index }
        guard let first = linears.first, let last = linears.last else {
            throw BatchNormKitError.fileFormat(
                path: path, reason: "cannot infer the network: no metadata and no 2-D Linear weight named like layers.0.weight"
                    + " (the lesson's MyNetwork) or 0.weight (a bare nn.Sequential); the file holds "
                    + (file.tensors.isEmpty ? "no tensors" : file.tensors.keys.sorted(by: _stateNameOrder).prefix(8).joined(separator: ", ")
                       + (file.tensors.count > 8 ? ", …" : "")))
        }
        var placement = NormPlacement.before
        if let norm = norms.min(), let owner = linears.last(where: { $0.index < norm }), norm - owner.index == 2 {
            placement = .after
        }
        self.init(inputSize: first.shape[1], hiddenSizes: linears.dropLast().map { $0.shape[0] },
                  classes: last.shape[0], batchNorm: !norms.isEmpty, placement: placement)
    }

    /// The metadata's architecture when present, else the inferred one.
    public init(of file: SafeTensorsFile, path: String) throws {
        if let stored = try NetworkArchitecture(metadata: file.metadata, path: path) {
            self = stored
        } else {
            self = try NetworkArchitecture(inferringFrom: file, path: path)
        }
    }

    /// Float32 values in this network's state dict (weights, biases, γ, β,
    /// running statistics), or nil when the count overflows `Int`.
    public var stateValueCount: Int? {
        let widths = [inputSize] + hiddenSizes + [classes]
        var total = 0
        for (i, (inputs, outputs)) in zip(widths, widths.dropFirst()).enumerated() {
            // W and b, then γ, β, running mean and variance after every hidden Linear
            let (weights, o1) = inputs.multipliedReportingOverflow(by: outputs)
            let perFeature = batchNorm && i < hiddenSizes.count ? 5 : 1
            let (extra, o2) = outputs.multipliedReportingOverflow(by: perFeature)
            let (sum, o3) = total.addingReportingOverflow(weights)
            let (next, o4) = sum.addingReportingOverflow(extra)
            if o1 || o2 || o3 || o4 { return nil }
            total = next
        }
        return total
    }

    /// Throws unless `file` holds at least as many Float32 values as this
    /// architecture's state: metadata (or names) claiming a network larger
    /// than the file would otherwise make ``makeNetwork(seed:)`` allocate it
    /// before strict loading could say the tensors do not fit.
    public func checkFits(_ file: SafeTensorsFile, path: String) throws {
        try _checkStateFits(file, path: path, needed: stateValueCount, architecture: description)
    }

    /// A freshly initialized network of this shape (weights from `seed`).
    public func makeNetwork(seed: UInt64 = 0) throws -> SeedNetwork {
        try SeedNetwork(inputSize: inputSize, hiddenSizes: hiddenSizes, classes: classes,
                        batchNorm: batchNorm, placement: placement, seed: seed)
    }
}

// MARK: - SeedNetwork from a checkpoint

extension SeedNetwork {
    /// This network's shape, as written into checkpoint metadata.
    public var architecture: NetworkArchitecture {
        NetworkArchitecture(inputSize: (layers.layers.first as? Linear)?.inFeatures ?? 0, hiddenSizes: hiddenSizes,
                            classes: (layers.layers.last as? Linear)?.outFeatures ?? 0,
                            batchNorm: useBatchNorm, placement: placement)
    }

    /// Rebuilds the network a state dict belongs to and loads it strictly
    /// (see ``NetworkArchitecture/init(of:path:)``). Names may be the
    /// lesson's `MyNetwork` ones (`layers.0.weight`) or a bare
    /// `nn.Sequential`'s (`0.weight`); a training checkpoint's `optimizer.*`
    /// and `trainer.*` entries are ignored. The network is in
    /// training mode, like a fresh PyTorch module; call `eval()` for inference.
    ///
    /// - Throws: `fileFormat` for bad metadata, `checkpointMismatch` when
    ///   the tensors do not fit the architecture.
    public convenience init(stateDict file: SafeTensorsFile, path: String = "state dict") throws {
        let file = file.modelStateDict._seedNetworkNames()
        let architecture = try NetworkArchitecture(of: file, path: path)
        try architecture.checkStateNames(file, path: path)   // names every bad entry first
        try architecture.checkFits(file, path: path)
        try self.init(inputSize: architecture.inputSize, hiddenSizes: architecture.hiddenSizes,
                      classes: architecture.classes, batchNorm: architecture.batchNorm,
                      placement: architecture.placement)
        try loadStateDict(file, path: path)
    }

    /// Reads a checkpoint (BatchNormKit's or PyTorch's) and rebuilds its network.
    ///
    /// - Throws: `fileUnreadable`/`fileFormat` for an unreadable or malformed
    ///   file, `checkpointMismatch` when the tensors do not fit.
    public convenience init(checkpoint path: String) throws {
        try self.init(stateDict: try SafeTensorsFile(contentsOf: path), path: path)
    }
}

extension SafeTensorsFile {
    /// A bare `nn.Sequential`'s state dict (`0.weight`, `1.running_mean`, …)
    /// renamed to ``SeedNetwork``'s `layers.<i>.<name>`; any other file as it is.
    func _seedNetworkNames() -> SafeTensorsFile {
        let bare = !tensors.isEmpty && tensors.keys.allSatisfy { name in
            name.split(separator: ".", maxSplits: 1).first.map { Int($0) != nil } ?? false
        }
        guard bare else { return self }
        var renamed = self
        renamed.tensors = Dictionary(uniqueKeysWithValues: tensors.map { ("layers." + $0.key, $0.value) })
        return renamed
    }
}
