// The state dict a NetworkArchitecture implies, computed from the
// architecture alone (no network is built), so a checkpoint's names and
// dtypes are checked — and every missing, unexpected or mis-typed entry
// named — before anything is allocated for it.

extension NetworkArchitecture {
    /// Every state entry of this architecture's ``SeedNetwork`` in
    /// ``Layer/namedStateEntries(prefix:)`` order: name, dtype, shape
    /// (`layers.0.weight F32 [256, 784]`, …, `layers.1.num_batches_tracked I64 []`).
    public var stateLayout: [(name: String, dtype: SafeTensorsDType, shape: [Int])] {
        var layout: [(name: String, dtype: SafeTensorsDType, shape: [Int])] = []
        var index = 0, width = inputSize
        func linear(_ outputs: Int) {
            layout += [("layers.\(index).weight", .f32, [outputs, width]), ("layers.\(index).bias", .f32, [outputs])]
            index += 1
        }
        for hidden in hiddenSizes {
            linear(hidden)
            if batchNorm {
                let norm = placement == .before ? index : index + 1
                layout += ["weight", "bias", "running_mean", "running_var"].map { ("layers.\(norm).\($0)", .f32, [hidden]) }
                layout.append(("layers.\(norm).num_batches_tracked", .i64, []))
                index += 2   // the BatchNorm and the ReLU
            } else {
                index += 1   // the ReLU
            }
            width = hidden
        }
        linear(classes)
        return layout
    }

    /// Throws unless `file` holds exactly ``stateLayout``: PyTorch's strict
    /// `load_state_dict` check, done before the network is built.
    /// - Throws: `checkpointMismatch` naming every missing, unexpected and
    ///   mismatched (dtype or shape) entry.
    public func checkStateNames(_ file: SafeTensorsFile, path: String) throws {
        // Each hidden block has at least 2 entries: far more blocks than tensors
        // cannot fit, and listing millions of missing names helps nobody.
        guard hiddenSizes.count <= max(file.tensors.count, 64) else {
            throw BatchNormKitError.fileFormat(
                path: path, reason: "the architecture has \(hiddenSizes.count) hidden layers but the file holds only \(file.tensors.count) tensors")
        }
        try _checkStrictly(file, against: stateLayout, path: path)
    }
}
