import BatchNormKernels

/// Batch normalization across the ranks of a data-parallel job,
/// `torch.nn.SyncBatchNorm`: in training mode every rank normalizes its slice
/// of the batch with the statistics of the *whole* batch, as one BatchNorm on
/// all ranks' samples would. Evaluation mode (running statistics) is local.
///
/// - Input `(N, C, *)` per rank (N may be 1: the count that matters is every
///   rank's together, ≥ 2).
/// - Forward: each rank's per-feature moments (count, mean, M2) are gathered
///   and merged in rank order with Chan's update (`FeatureMoments.merge(_:)` in BatchNormKernels),
///   so every rank gets the same global statistics; the running buffers take
///   the global unbiased variance.
/// - Backward: Σdy and Σdy·(x − μ) are summed over the ranks for dx; dγ and dβ
///   stay this rank's own sums, as in PyTorch (a data-parallel step sums
///   parameter gradients over ranks afterwards).
/// - Every rank must call forward and backward in the same order: each is one
///   ``ProcessGroup/allReduceSum(_:)``.
///
/// Parameters and buffers are BatchNorm1d's (same names and defaults). The
/// exchanges are the two hooks of its base class, `_BatchNorm`.
public final class SyncBatchNorm: _BatchNorm {
    /// The ranks this layer synchronizes with.
    public let processGroup: ProcessGroup
    /// The exchange buffer: `size·(1 + 3C)` Doubles (moments), of which the
    /// first 2C also carry the gradient sums.
    private let exchange: UnsafeMutableBufferPointer<Double>
    /// One other rank's moments while merging (allocated once).
    private var peer: FeatureMoments

    /// - Parameters:
    ///   - numFeatures: C, the features (channels) of the input.
    ///   - eps: ε added to the variance, > 0.
    ///   - momentum: weight of the new batch in the running statistics (PyTorch's 0.1); nil: cumulative average.
    ///   - affine: learn γ and β.
    ///   - trackRunningStats: keep running statistics for evaluation.
    ///   - processGroup: this rank's handle on the job's ranks.
    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true, processGroup: ProcessGroup) throws {
        self.processGroup = processGroup
        let buffer = UnsafeMutableBufferPointer<Double>.allocate(
            capacity: numFeatures > 0 ? processGroup.size * (1 + 3 * numFeatures) : 0)
        buffer.initialize(repeating: 0)
        exchange = buffer
        peer = FeatureMoments(featureCount: max(numFeatures, 0))
        do {
            try super.init(.any, numFeatures: numFeatures, eps: eps, momentum: momentum, affine: affine,
                           trackRunningStats: trackRunningStats)
        } catch {
            buffer.deallocate()   // the layer was never made: its deinit does not run
            throw error
        }
    }

    deinit { exchange.deallocate() }

    override var statisticsContext: String { context + " over all ranks" }

    /// Replaces this rank's `moments` with every rank's, merged in rank order.
    /// Slot r of the exchange buffer is `[count, shift[C], mean[C], m2[C]]`.
    override func reduceMoments() throws {
        let c = numFeatures, width = 1 + 3 * c, buffer = exchange.baseAddress!
        exchange.update(repeating: 0)
        write(moments, to: buffer + processGroup.rank * width)
        try processGroup.allReduceSum(exchange)
        // rank 0's moments (its shift: one of its values per feature), then
        // Chan's merge of each further rank in order
        read(buffer, into: &moments)
        for r in 1..<max(processGroup.size, 1) {
            read(buffer + r * width, into: &peer)
            moments.merge(peer)
        }
    }

    /// dγ, dβ from this rank's Σdy, Σdy·(x − shift); then those sums over all
    /// ranks, with the global count, for dx's constants.
    override func reduceGradientSums(gammaGrad: UnsafeMutablePointer<Float>?,
                                     betaGrad: UnsafeMutablePointer<Float>?) throws -> Int? {
        // an eval-mode forward used this rank's running statistics: nothing to exchange
        guard lastForwardTrained else { return nil }
        let c = numFeatures, sums = exchange.baseAddress!
        // keep the local sums: backwardConstants overwrites sumGradShifted
        sums.update(from: work.sumGrad, count: c)
        (sums + c).update(from: work.sumGradShifted, count: c)
        BatchNormKernel.backwardConstants(
            sumGrad: work.sumGrad, sumGradShifted: work.sumGradShifted, invStd: work.invStd, meanOffset: work.meanOffset,
            featureCount: c, gamma: weight?.value._pointer, valuesPerFeature: moments.count, usedBatchStatistics: true,
            gammaGrad: gammaGrad, betaGrad: betaGrad,
            gradScale: work.gradScale, inputScale: work.inputScale, constant: work.gradConstant)
        try processGroup.allReduceSum(UnsafeMutableBufferPointer(start: sums, count: 2 * c))
        work.sumGrad.update(from: sums, count: c)
        work.sumGradShifted.update(from: sums + c, count: c)
        return moments.count
    }

    /// `[count, shift[C], mean[C], m2[C]]` at `slot`.
    private func write(_ m: FeatureMoments, to slot: UnsafeMutablePointer<Double>) {
        let c = numFeatures
        slot[0] = Double(m.count)
        m.shift.withUnsafeBufferPointer { for f in 0..<c { slot[1 + f] = Double($0[f]) } }
        m.mean.withUnsafeBufferPointer { (slot + 1 + c).update(from: $0.baseAddress!, count: c) }
        m.m2.withUnsafeBufferPointer { (slot + 1 + 2 * c).update(from: $0.baseAddress!, count: c) }
    }

    /// The moments written by ``write(_:to:)`` at `slot`, into `m` (no allocation).
    private func read(_ slot: UnsafePointer<Double>, into m: inout FeatureMoments) {
        let c = numFeatures
        m.count = Int(slot[0])
        m.shift.withUnsafeMutableBufferPointer { for f in 0..<c { $0[f] = Float(slot[1 + f]) } }
        m.mean.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: slot + 1 + c, count: c) }
        m.m2.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: slot + 1 + 2 * c, count: c) }
    }
}
