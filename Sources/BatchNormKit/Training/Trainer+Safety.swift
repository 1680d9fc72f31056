// What a training run checks so it never goes on silently: a batch the data
// cannot fill, an epoch with no step, and a loss or weights that stopped
// being finite (a diverged run). PyTorch trains on NaN without a word; here
// the run stops at the step it happened with `BatchNormKitError.diverged`.

extension Layer {
    /// The name of the first state entry (parameter or running statistic,
    /// in ``Layer/namedStateEntries(prefix:)`` order) holding a NaN or an
    /// infinity, or nil when every value is finite.
    public func firstNonFiniteStateEntry() -> String? {
        for (name, entry) in namedStateEntries(prefix: "") {
            let tensor: Tensor
            switch entry {
            case let .parameter(p): tensor = p.value
            case let .buffer(t): tensor = t
            case .batchCounter: continue
            }
            if !tensor._allFinite { return name }
        }
        return nil
    }
}

extension Tensor {
    /// Whether every element is finite (no NaN, no ±infinity).
    var _allFinite: Bool {
        let p = _pointer
        var finite = true
        for i in 0..<count where !p[i].isFinite { finite = false; break }
        return finite
    }
}

extension Trainer {
    /// Throws unless `data` can fill this trainer's batches: the batch size
    /// is at most the sample count (PyTorch's DataLoader would silently yield
    /// one short batch; here the caller asks for the size it means, and
    /// `bnkit train` clamps with a message), and with R ranks at least one
    /// step gives every rank two samples.
    func checkBatches(for data: LabeledSamples, ranks: Int) throws {
        guard configuration.batchSize <= data.count else {
            throw BatchNormKitError.invalidArgument(
                name: "batch size", value: "\(configuration.batchSize)",
                requirement: "exceeds the \(data.count) training samples; use at most \(data.count) (one step over all of them)")
        }
        let (perStep, overflow) = ranks.multipliedReportingOverflow(by: 2)
        guard !overflow, data.count >= perStep else {
            throw BatchNormKitError.emptyBatch(
                context: "training on \(data.count) samples with \(ranks) ranks (every step needs 2 samples per rank, so no batch is left)")
        }
    }
}
