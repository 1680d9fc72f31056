// Checkpoints: a model's state as a safetensors file with PyTorch's
// `state_dict()` names and dtypes, so files move both ways between
// BatchNormKit and `safetensors.torch.save_file` / `load_file`:
//
//     layers.0.weight                F32 [256, 784]   Linear
//     layers.0.bias                  F32 [256]
//     layers.1.weight / .bias        F32 [256]        BatchNorm1d γ, β
//     layers.1.running_mean / _var   F32 [256]
//     layers.1.num_batches_tracked   I64 []           (a 0-d tensor, as PyTorch writes it)
//
// Loading is strict, like `load_state_dict(strict=True)`, and all-or-nothing.
// The architecture needed to rebuild a network lives in the file's metadata
// (see `Checkpoint+Architecture.swift`).

// MARK: - Saving

extension Layer {
    /// The model's state, PyTorch's `state_dict()`, as an in-memory safetensors file.
    ///
    /// Parameters and `running_mean`/`running_var` are `F32` with the tensor's
    /// shape (`[out, in]` for a Linear weight, `[C]` for BatchNorm vectors);
    /// `num_batches_tracked` is an `I64` scalar of shape `[]`. Values are copied:
    /// later training does not change the returned file.
    ///
    /// - Parameter metadata: extra `__metadata__` entries (string → string).
    ///   A ``SeedNetwork`` adds its ``NetworkArchitecture/metadata``, so the
    ///   file alone is enough to rebuild it; those keys cannot be overridden
    ///   here (a wrong `norm` would make the file unloadable).
    public func stateDict(metadata: [String: String] = [:]) -> SafeTensorsFile {
        var tensors: [String: SafeTensor] = [:]
        for (name, entry) in namedStateEntries(prefix: "") {
            tensors[name] = _checkpointTensor(entry)
        }
        var header = metadata
        if let network = self as? SeedNetwork {
            header.merge(network.architecture.metadata) { _, architecture in architecture }
        }
        if let network = self as? FeedForwardNetwork {
            header.merge(network.spec.metadata) { _, architecture in architecture }
        }
        if let network = self as? CNN {
            header.merge(network.architecture.metadata) { _, architecture in architecture }
        }
        return SafeTensorsFile(tensors: tensors, metadata: header)
    }

    /// Writes ``stateDict(metadata:)`` to `path` atomically: a temporary file
    /// in the same directory is flushed and renamed over `path`, so an
    /// existing checkpoint is replaced whole or not at all.
    ///
    /// - Throws: `BatchNormKitError.fileUnreadable` when the file cannot be written.
    public func saveCheckpoint(to path: String, metadata: [String: String] = [:]) throws {
        try stateDict(metadata: metadata).write(to: path)
    }

    // MARK: - Loading

    /// Reads the safetensors file at `path` and loads it with ``loadStateDict(_:path:)``.
    ///
    /// - Throws: `fileUnreadable`/`fileFormat` for a file that cannot be read
    ///   or is not safetensors; `checkpointMismatch` when it does not fit.
    public func loadCheckpoint(from path: String) throws {
        try loadStateDict(try SafeTensorsFile(contentsOf: path), path: path)
    }

    /// Copies every entry of `file` into this model, PyTorch's
    /// `load_state_dict(strict=True)`.
    ///
    /// Every name of ``Layer/namedStateEntries(prefix:)`` must be present
    /// with the expected dtype and shape, and the file must hold nothing
    /// else (metadata aside). All problems are collected before anything is
    /// written, so the model is either fully loaded or untouched.
    ///
    /// - Parameters:
    ///   - file: the state dict, e.g. read by ``SafeTensorsFile/init(contentsOf:)``.
    ///   - path: names the file in the error message.
    /// - Throws: `BatchNormKitError.checkpointMismatch` listing every missing
    ///   name (model order), every unexpected name and every mismatch as e.g.
    ///   `"layers.0.weight: expected F32 [256, 784], got F32 [128, 784]"`;
    ///   `fileFormat` naming the tensor when a value is NaN or infinite or a
    ///   `running_var` is negative (unlike PyTorch, which loads them and then
    ///   computes NaN).
    public func loadStateDict(_ file: SafeTensorsFile, path: String = "state dict") throws {
        let entries = namedStateEntries(prefix: "")
        try _checkStrictly(file, against: entries.map { name, entry in
            let (dtype, shape) = _checkpointLayout(entry)
            return (name, dtype, shape)
        }, path: path)

        // Decode everything before the first write: decoding can still fail
        // on an in-memory SafeTensor whose bytes were edited out of shape.
        var floats: [(Tensor, [Float])] = []
        var counters: [(BatchCounting, Int64)] = []
        for (name, entry) in entries {
            let stored = file.tensors[name]!
            switch entry {
            case let .parameter(p): floats.append((p.value, try _checkedStateValues(stored.floats, name: name, path: path)))
            case let .buffer(t): floats.append((t, try _checkedStateValues(stored.floats, name: name, path: path)))
            case let .batchCounter(norm):
                guard let count = try stored.int64s.first else {
                    throw BatchNormKitError.checkpointMismatch(path: path, missing: [], unexpected: [],
                                                               mismatched: ["\(name): expected one I64 value, got none"])
                }
                counters.append((norm, count))
            }
        }
        for (tensor, values) in floats {
            tensor.withUnsafeMutableBufferPointer { target in
                values.withUnsafeBufferPointer { target.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
            }
        }
        for (norm, count) in counters { norm.numBatchesTracked = count }
    }
}

// MARK: - Entry layout

/// PyTorch's strict check: `file` holds exactly the entries of `layout`.
/// - Throws: `checkpointMismatch` naming every missing name (layout order),
///   every unexpected name and every dtype or shape mismatch.
func _checkStrictly(_ file: SafeTensorsFile, against layout: [(name: String, dtype: SafeTensorsDType, shape: [Int])],
                    path: String) throws {
    var missing: [String] = [], mismatched: [String] = []
    for (name, dtype, shape) in layout {
        guard let stored = file.tensors[name] else { missing.append(name); continue }
        if stored.dtype != dtype || stored.shape != shape {
            mismatched.append("\(name): expected \(_describe(dtype, shape)), got \(_describe(stored.dtype, stored.shape))")
        }
    }
    let known = Set(layout.map(\.name))
    let unexpected = file.tensors.keys.filter { !known.contains($0) }.sorted(by: _stateNameOrder)
    guard missing.isEmpty, unexpected.isEmpty, mismatched.isEmpty else {
        throw BatchNormKitError.checkpointMismatch(path: path, missing: missing, unexpected: unexpected, mismatched: mismatched)
    }
}

/// `values` of state entry `name` if they can be a trained model's: every one
/// finite, and a `running_var` never negative.
/// - Throws: `fileFormat` naming the tensor, the first bad index and its value.
func _checkedStateValues(_ values: [Float], name: String, path: String) throws -> [Float] {
    let isVariance = name.hasSuffix("running_var")
    if let bad = values.firstIndex(where: { !$0.isFinite || (isVariance && $0 < 0) }) {
        let problem = values[bad].isFinite ? "is negative (a variance is ≥ 0)" : "is not finite"
        throw BatchNormKitError.fileFormat(path: path, reason: "tensor \"\(name)\": value \(values[bad]) at index \(bad) \(problem)")
    }
    return values
}

/// The dtype and shape PyTorch uses for one state entry.
func _checkpointLayout(_ entry: StateEntry) -> (SafeTensorsDType, [Int]) {
    switch entry {
    case let .parameter(p): return (.f32, p.value.shape)
    case let .buffer(t): return (.f32, t.shape)
    case .batchCounter: return (.i64, [])
    }
}

/// One state entry as a safetensors tensor (a copy of its values).
func _checkpointTensor(_ entry: StateEntry) -> SafeTensor {
    do {
        switch entry {
        case let .parameter(p): return try SafeTensor(floats: p.value.scalars, shape: p.value.shape)
        case let .buffer(t): return try SafeTensor(floats: t.scalars, shape: t.shape)
        case let .batchCounter(norm): return try SafeTensor(int64s: [norm.numBatchesTracked], shape: [])
        }
    } catch {
        // A Tensor's count is the product of its shape by construction.
        preconditionFailure("state entry inconsistent with its shape: \(error)")
    }
}

/// `F32 [256, 784]`, `I64 []`: how mismatches are reported.
func _describe(_ dtype: SafeTensorsDType, _ shape: [Int]) -> String { "\(dtype.rawValue) \(shape)" }

/// Orders state names by their dot-separated parts, numbers numerically,
/// so `layers.10.weight` follows `layers.9.weight` as in PyTorch's listing.
func _stateNameOrder(_ a: String, _ b: String) -> Bool {
    let left = a.split(separator: ".", omittingEmptySubsequences: false)
    let right = b.split(separator: ".", omittingEmptySubsequences: false)
    for (l, r) in zip(left, right) where l != r {
        if let x = Int(l), let y = Int(r) { return x < y }
        return l < r
    }
    return left.count < right.count
}
