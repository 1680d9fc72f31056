// Resuming a run: a training checkpoint is the model's state dict plus
// everything else the next step depends on, as extra safetensors entries
// under two prefixes that no PyTorch module uses:
//
//     optimizer.step                      I64 []    Adam's t (Adam/AdamW only)
//     optimizer.momentum_buffer.<param>   F32       SGD's buffers (after a step with momentum)
//     optimizer.exp_avg.<param>, optimizer.exp_avg_sq.<param>, optimizer.max_exp_avg_sq.<param>
//                                         F32       Adam's moments
//     trainer.epoch, trainer.step         I64 []    epochs and optimizer steps done
//     trainer.data_order_rng_state        I64 []    the shuffling generator (its UInt64 bits)
//     trainer.data_order                  I64 [N]   the last permutation (the next one shuffles it)
//
// `<param>` is the parameter's state-dict name (`layers.0.weight`). In
// PyTorch the file is a state dict plus extras:
// `model.load_state_dict({k: v for k, v in load_file(f).items() if not k.startswith(("optimizer.", "trainer."))})`.
// The schedule needs no entry: it is a function of the epoch or step.

/// The state-name prefixes of a training checkpoint's extra entries.
public let trainingStatePrefixes = ["optimizer.", "trainer."]

extension SafeTensorsFile {
    /// The model's own entries: this file without the training state
    /// (`optimizer.*`, `trainer.*`).
    public var modelStateDict: SafeTensorsFile {
        var copy = self
        copy.tensors = tensors.filter { name, _ in !trainingStatePrefixes.contains { name.hasPrefix($0) } }
        return copy
    }
}

extension Trainer {
    /// The optimizer's and the loop's state as `optimizer.*` / `trainer.*`
    /// entries (see the file's header): with the model's state dict, enough
    /// to continue the run exactly where it is.
    public func trainingState() -> [String: SafeTensor] {
        var entries: [String: SafeTensor] = [:]
        let names = model.namedParameters().map(\.name)
        for (name, tensor) in optimizer.stateTensors(parameterNames: names) { entries["optimizer." + name] = tensor }
        // Counts and a permutation of data indices always fit their shapes.
        entries["trainer.epoch"] = try? SafeTensor(int64s: [Int64(epochsCompleted)], shape: [])
        entries["trainer.step"] = try? SafeTensor(int64s: [Int64(stepsCompleted)], shape: [])
        entries["trainer.data_order_rng_state"] = try? SafeTensor(int64s: [Int64(bitPattern: generator.state)], shape: [])
        entries["trainer.data_order"] = try? SafeTensor(int64s: order.map(Int64.init), shape: [order.count])
        return entries
    }

    /// Writes the model's state dict plus ``trainingState()`` to `path`
    /// atomically (a checkpoint ``resume(from:)`` continues from, and that
    /// ``SeedNetwork/init(checkpoint:)`` and PyTorch still load).
    ///
    /// - Throws: `fileUnreadable` when the file cannot be written.
    public func saveTrainingCheckpoint(to path: String, metadata: [String: String] = [:]) throws {
        var file = model.stateDict(metadata: metadata.merging(["optimizer": configuration.optimizer.rawValue]) { _, new in new })
        file.tensors.merge(trainingState()) { _, new in new }
        try file.write(to: path)
    }

    /// Loads a checkpoint of ``saveTrainingCheckpoint(to:metadata:)``: the
    /// model strictly, then the optimizer's buffers, the epoch and step
    /// counts and the data order, so the next ``fit(train:test:onBatch:onEpoch:)``
    /// continues as if the run had not stopped (bit for bit, on the same
    /// machine and thread count). All checks run before anything is written.
    ///
    /// - Throws: `fileUnreadable`/`fileFormat` for an unreadable file;
    ///   `checkpointMismatch` when the model's entries do not fit or a
    ///   `trainer.*` entry is missing or malformed; `invalidArgument` when the
    ///   file was written by another optimizer.
    public func resume(from path: String) throws {
        try resume(from: try SafeTensorsFile(contentsOf: path), path: path)
    }

    /// ``resume(from:)`` for a file already in memory.
    public func resume(from file: SafeTensorsFile, path: String = "checkpoint") throws {
        if let kind = file.metadata["optimizer"], kind != configuration.optimizer.rawValue {
            throw BatchNormKitError.invalidArgument(name: "optimizer", value: configuration.optimizer.rawValue,
                                                    requirement: "must be the checkpoint's (\(kind)) to resume \(path)")
        }
        let epoch = try _readStateCounter("trainer.epoch", from: file.tensors, path: path)
        let step = try _readStateCounter("trainer.step", from: file.tensors, path: path)
        let rngState = try _readStateCounter("trainer.data_order_rng_state", from: file.tensors, path: path)
        guard let stored = file.tensors["trainer.data_order"], stored.dtype == .i64, stored.shape.count == 1 else {
            throw BatchNormKitError.checkpointMismatch(path: path, missing: ["trainer.data_order (I64 [N])"], unexpected: [], mismatched: [])
        }
        let restoredOrder = try stored.int64s.map { Int($0) }
        guard Set(restoredOrder).count == restoredOrder.count, restoredOrder.allSatisfy({ (0..<restoredOrder.count).contains($0) }),
              epoch >= 0, step >= 0 else {
            throw BatchNormKitError.fileFormat(path: path, reason: "trainer.* entries are not a valid training state")
        }
        var optimizerEntries: [String: SafeTensor] = [:]
        for (name, tensor) in file.tensors where name.hasPrefix("optimizer.") {
            optimizerEntries[String(name.dropFirst("optimizer.".count))] = tensor
        }
        try model.loadStateDict(file.modelStateDict, path: path)
        try optimizer.loadStateTensors(optimizerEntries, parameterNames: model.namedParameters().map(\.name), path: path)
        epochsCompleted = Int(epoch)
        stepsCompleted = Int(step)
        generator.state = UInt64(bitPattern: rngState)
        order = restoredOrder
    }
}
