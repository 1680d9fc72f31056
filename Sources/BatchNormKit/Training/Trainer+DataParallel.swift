// MARK: - Data parallelism
//
// With a ProcessGroup every rank runs a replica of the model (same seed, so
// the same initial weights) and the same shuffled order; each step, rank r
// trains on its share of the batch: rows [n·r/R, n·(r+1)/R) of n. Its loss
// gradient is scaled by share/n, so the gradients *sum* over the ranks to the
// gradient of the mean loss over all n samples — the step a single process
// takes on the whole batch, even for unequal shares (PyTorch's DDP averages
// instead, which is the same for equal shares). With SyncBatchNorm in the
// model the normalization also uses the whole batch, so R ranks follow the
// one-process trajectory up to Float32 rounding. One all-reduce per step
// carries every gradient plus the step's loss sum and correct count; every
// rank then applies the same SGD step. Before the first step rank 0's state
// is broadcast, so replicas on different machines cannot start apart.

extension Trainer {
    /// Sums every parameter's gradient, the loss sum and the correct count
    /// over the ranks, in place; returns the step's totals over all ranks.
    func allReduceGradients(lossSum: Double, correct: Int) throws -> (lossSum: Double, correct: Int) {
        let buffer = exchange.baseAddress!
        var offset = 0
        for p in optimizer.parameters {
            p.grad.withUnsafeBufferPointer { g in for i in 0..<g.count { buffer[offset + i] = Double(g[i]) } }
            offset += p.value.count
        }
        buffer[offset] = lossSum
        buffer[offset + 1] = Double(correct)
        try processGroup!.allReduceSum(exchange)
        offset = 0
        for p in optimizer.parameters {
            p.grad.withUnsafeMutableBufferPointer { g in for i in 0..<g.count { g[i] = Float(buffer[offset + i]) } }
            offset += p.value.count
        }
        return (buffer[offset], Int(buffer[offset + 1]))
    }
}

extension Trainer {
    /// Copies rank 0's parameters, buffers and batch counters to every rank,
    /// once before the first step: replicas built from the same seed start
    /// equal anyway, but ranks on different machines (different BLAS, a
    /// checkpoint loaded on one) must not start apart. One flat broadcast.
    func broadcastStateFromRankZero() throws {
        let entries = model.namedStateEntries(prefix: "").map(\.entry)
        func tensor(_ entry: StateEntry) -> Tensor? {
            switch entry {
            case let .parameter(p): return p.value
            case let .buffer(t): return t
            case .batchCounter: return nil
            }
        }
        let total = entries.reduce(0) { $0 + (tensor($1)?.count ?? 1) }
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(total, 1))
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 0)
        var offset = 0
        for entry in entries {
            if let t = tensor(entry) {
                t.withUnsafeBufferPointer { for i in 0..<$0.count { buffer[offset + i] = Double($0[i]) } }
                offset += t.count
            } else if case let .batchCounter(counter) = entry {
                buffer[offset] = Double(counter.numBatchesTracked)
                offset += 1
            }
        }
        try processGroup!.broadcast(buffer, from: 0)
        offset = 0
        for entry in entries {
            if let t = tensor(entry) {
                t.withUnsafeMutableBufferPointer { for i in 0..<$0.count { $0[i] = Float(buffer[offset + i]) } }
                offset += t.count
            } else if case let .batchCounter(counter) = entry {
                counter.numBatchesTracked = Int64(buffer[offset])
                offset += 1
            }
        }
    }
}
