// Which CNN a checkpoint belongs to: `architecture=CNN` and the sizes in the
// safetensors `__metadata__` (written by `stateDict()`), or — for a file
// written by PyTorch, which has none — read off the state names and shapes.

extension CNNArchitecture {
    /// The metadata entries that describe this architecture, e.g.
    /// `architecture=CNN, image_size=28, in_channels=1, channels=32,64,
    /// kernel_size=3, hidden_size=128, classes=10, norm=batchnorm` (`groupnorm`
    /// with `norm_groups`, `instancenorm`, `none`).
    public var metadata: [String: String] {
        var entries = ["architecture": "CNN",
         "image_size": "\(imageSize)",
         "in_channels": "\(inChannels)",
         "channels": channels.map(String.init).joined(separator: ","),
         "kernel_size": "\(kernelSize)",
         "hidden_size": "\(hiddenSize)",
         "classes": "\(classes)",
         "norm": "none"]
        switch normalization {
        case .batchNorm: entries["norm"] = "batchnorm"
        case let .groupNorm(groups): entries["norm"] = "groupnorm"; entries["norm_groups"] = "\(groups)"
        case .instanceNorm: entries["norm"] = "instancenorm"
        case .none: break
        }
        return entries
    }

    /// Whether `file` holds a CNN: its metadata says so, or it has no
    /// `architecture` entry and a 4-D `features.0.weight` (PyTorch's names).
    public static func describes(_ file: SafeTensorsFile) -> Bool {
        if let kind = file.metadata["architecture"] { return kind == "CNN" }
        return file.tensors["features.0.weight"]?.shape.count == 4
    }

    /// Reads ``metadata`` back; nil when the file has no `architecture=CNN`.
    /// - Throws: `BatchNormKitError.fileFormat` for a missing or malformed entry.
    public init?(metadata: [String: String], path: String) throws {
        guard metadata["architecture"] == "CNN" else { return nil }
        func fail(_ reason: String) -> BatchNormKitError { .fileFormat(path: path, reason: "metadata: \(reason)") }
        func positive(_ key: String) throws -> Int {
            guard let text = metadata[key], let value = Int(text), value > 0 else {
                throw fail("\(key) is \(metadata[key].map { "\"\($0)\"" } ?? "missing"), expected a positive integer")
            }
            return value
        }
        let text = metadata["channels"] ?? ""
        let channels = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        guard !text.isEmpty, channels.allSatisfy({ $0 > 0 }) else {
            throw fail("channels \"\(text)\" is not a comma-separated list of positive integers")
        }
        let normalization: CNNNormalization
        switch metadata["norm"] {
        case "batchnorm": normalization = .batchNorm
        case "groupnorm": normalization = .groupNorm(groups: try positive("norm_groups"))
        case "instancenorm": normalization = .instanceNorm
        case "none": normalization = .none
        case let other:
            throw fail("norm is \(other.map { "\"\($0)\"" } ?? "missing"), expected batchnorm, groupnorm, instancenorm or none")
        }
        self.init(imageSize: try positive("image_size"), inChannels: try positive("in_channels"), channels: channels,
                  kernelSize: try positive("kernel_size"), hiddenSize: try positive("hidden_size"),
                  classes: try positive("classes"), normalization: normalization)
    }

    /// Reads the architecture off PyTorch state names: 4-D `features.<i>.weight`
    /// are the convolutions, `classifier.<i>.weight` the Linears, a
    /// `running_mean` marks BatchNorm (a GroupNorm or InstanceNorm file needs
    /// its metadata: their names alone do not tell them apart). The image size is not stored: the
    /// first size whose feature maps give the classifier's input width is
    /// taken, 28 when it fits.
    /// - Throws: `fileFormat` when the names do not describe such a network.
    public init(inferringFrom file: SafeTensorsFile, path: String) throws {
        func indexed(_ prefix: String, rank: Int) -> [[Int]] {
            file.tensors.compactMap { name, tensor -> (Int, [Int])? in
                let parts = name.split(separator: ".")
                guard parts.count == 3, parts[0] == prefix, parts[2] == "weight", tensor.shape.count == rank,
                      let index = Int(parts[1]) else { return nil }
                return (index, tensor.shape)
            }.sorted { $0.0 < $1.0 }.map(\.1)
        }
        let convs = indexed("features", rank: 4), linears = indexed("classifier", rank: 2)
        guard let first = convs.first, linears.count == 2 else {
            throw BatchNormKitError.fileFormat(
                path: path, reason: "cannot infer the CNN: expected 4-D features.<i>.weight and two classifier.<i>.weight tensors")
        }
        let batchNorm = file.tensors.keys.contains { $0.hasSuffix(".running_mean") }
        if !batchNorm, file.tensors["features.1.weight"] != nil {
            throw BatchNormKitError.fileFormat(
                path: path, reason: "cannot infer the CNN: features.1 is a normalization without running statistics (GroupNorm or InstanceNorm?); only files with bnkit metadata say which")
        }
        var a = CNNArchitecture(inChannels: first[1], channels: convs.map { $0[0] }, kernelSize: first[2],
                                hiddenSize: linears[0][0], classes: linears[1][0], normalization: batchNorm ? .batchNorm : .none)
        let wanted = linears[0][1], candidate = a
        func fits(_ size: Int) -> Bool { var b = candidate; b.imageSize = size; return b.flattenedFeatures == wanted }
        guard let size = ([28] + Array(1...4096)).first(where: fits) else {
            throw BatchNormKitError.fileFormat(path: path, reason: "cannot infer the CNN's image size from classifier.0.weight \(linears[0])")
        }
        a.imageSize = size
        self = a
    }

    /// The metadata's architecture when present, else the inferred one.
    public init(of file: SafeTensorsFile, path: String) throws {
        self = try CNNArchitecture(metadata: file.metadata, path: path) ?? CNNArchitecture(inferringFrom: file, path: path)
    }

    /// Float32 values in this network's state dict, or nil when a size overflows.
    public var stateValueCount: Int? {
        guard let flattened = flattenedFeatures else { return nil }
        var total = 0, width = inChannels
        // γ, β (and BatchNorm's running mean and variance) per channel
        let perChannel = normalization == .batchNorm ? 4 : normalization == .none ? 0 : 2
        func add(_ values: Int...) -> Bool {
            for v in values {
                let (sum, overflow) = total.addingReportingOverflow(v)
                if overflow { return false }
                total = sum
            }
            return true
        }
        for out in channels {
            let (w, o1) = (width * kernelSize * kernelSize).multipliedReportingOverflow(by: out)
            guard !o1, add(w, out, perChannel * out) else { return nil }
            width = out
        }
        let (w1, o2) = flattened.multipliedReportingOverflow(by: hiddenSize)
        guard !o2, add(w1, hiddenSize, batchNorm ? 4 * hiddenSize : 0, hiddenSize * classes, classes) else { return nil }
        return total
    }

    /// Throws unless `file` holds at least as many Float32 values as this
    /// architecture's state (so bad metadata cannot make the network allocate
    /// more than the file could fill).
    public func checkFits(_ file: SafeTensorsFile, path: String) throws {
        try _checkStateFits(file, path: path, needed: stateValueCount, architecture: description)
    }
}

extension CNN {
    /// Rebuilds the network a state dict belongs to (metadata, or PyTorch's
    /// names) and loads it strictly. The network is in training mode.
    /// - Throws: `fileFormat` for bad metadata, `checkpointMismatch` when the tensors do not fit.
    public convenience init(stateDict file: SafeTensorsFile, path: String = "state dict") throws {
        let architecture = try CNNArchitecture(of: file, path: path)
        try architecture.checkFits(file, path: path)
        try self.init(architecture)
        try loadStateDict(file, path: path)
    }

    /// Reads a checkpoint (BatchNormKit's or PyTorch's) and rebuilds its CNN.
    public convenience init(checkpoint path: String) throws {
        try self.init(stateDict: try SafeTensorsFile(contentsOf: path), path: path)
    }
}

/// Throws `fileFormat` unless `file` holds at least `needed` Float32 values
/// (nil: more than `Int.max`) for the architecture described as `architecture`:
/// metadata (or names) claiming a network larger than the file would
/// otherwise make the network allocate before strict loading could object.
func _checkStateFits(_ file: SafeTensorsFile, path: String, needed: Int?, architecture: String) throws {
    let held = file.tensors.values.reduce(0) { $0 + ($1.dtype == .f32 ? $1.bytes.count / 4 : 0) }
    guard let needed, needed <= held else {
        throw BatchNormKitError.fileFormat(
            path: path, reason: "the architecture it describes (\(architecture)) needs \(needed.map(String.init) ?? "more than Int.max") Float32 values, the file holds \(held)")
    }
}
