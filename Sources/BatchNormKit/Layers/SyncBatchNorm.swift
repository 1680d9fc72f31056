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
/// Parameters and buffers are BatchNorm1d's (same names and defaults).
public final class SyncBatchNorm: _BatchNorm {
    /// The ranks this layer synchronizes with.
    public var processGroup: ProcessGroup { group! }

    /// - Parameters:
    ///   - numFeatures: C, the features (channels) of the input.
    ///   - eps: ε added to the variance, > 0.
    ///   - momentum: weight of the new batch in the running statistics (PyTorch's 0.1); nil: cumulative average.
    ///   - affine: learn γ and β.
    ///   - trackRunningStats: keep running statistics for evaluation.
    ///   - processGroup: this rank's handle on the job's ranks.
    public init(numFeatures: Int, eps: Float = 1e-5, momentum: Float? = 0.1, affine: Bool = true,
                trackRunningStats: Bool = true, processGroup: ProcessGroup) throws {
        try super.init(.any, numFeatures: numFeatures, eps: eps, momentum: momentum, affine: affine,
                       trackRunningStats: trackRunningStats, group: processGroup)
    }
}

// MARK: - The exchanges

extension _BatchNorm {
    /// Replaces this rank's `moments` with every rank's, merged in rank order.
    /// Slot r of the exchange buffer is `[count, shift[C], mean[C], m2[C]]`.
    @inline(never)
    func _synchronizeMoments() throws {
        let group = group!, c = numFeatures, width = 1 + 3 * c
        let buffer = syncBuffer.baseAddress!
        syncBuffer.update(repeating: 0)
        let mine = buffer + group.rank * width
        mine[0] = Double(moments.count)
        moments.shift.withUnsafeBufferPointer { for f in 0..<c { mine[1 + f] = Double($0[f]) } }
        moments.mean.withUnsafeBufferPointer { (mine + 1 + c).update(from: $0.baseAddress!, count: c) }
        moments.m2.withUnsafeBufferPointer { (mine + 1 + 2 * c).update(from: $0.baseAddress!, count: c) }
        try group.allReduceSum(syncBuffer)
        // into rank 0's slot, Chan's merge of each further rank in order:
        // n = nA + nB, δ = meanB − meanA, mean += δ·nB/n, M2 += M2B + δ²·nA·nB/n
        let mean = buffer + 1 + c, m2 = buffer + 1 + 2 * c
        var count = buffer[0]
        for r in 1..<max(group.size, 1) {
            let slot = buffer + r * width, nB = slot[0]
            if nB == 0 { continue }
            let n = count + nB
            for f in 0..<c {
                let delta = slot[1 + c + f] - mean[f]
                mean[f] += delta * nB / n
                m2[f] += slot[1 + 2 * c + f] + delta * delta * count * nB / n
            }
            count = n
        }
        // the merged moments keep rank 0's shift (one of its values per feature)
        moments.shift.withUnsafeMutableBufferPointer { for f in 0..<c { $0[f] = Float(buffer[1 + f]) } }
        moments.mean.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: mean, count: c) }
        moments.m2.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: m2, count: c) }
        moments.count = Int(count)
    }

    /// dγ, dβ from this rank's Σdy, Σdy·(x − shift); then those sums over all
    /// ranks give dx's constants with the global count.
    @inline(never)
    func _backwardConstantsSynchronized(gammaGrad: UnsafeMutablePointer<Float>?,
                                        betaGrad: UnsafeMutablePointer<Float>?) throws {
        let group = group!, c = numFeatures
        let sums = syncBuffer.baseAddress!, exchanged = UnsafeMutableBufferPointer(start: sums, count: 2 * c)
        // keep the local sums: backwardConstants overwrites sumGradShifted
        sums.update(from: sumGrad, count: c)
        (sums + c).update(from: sumGradShifted, count: c)
        BatchNormKernel.backwardConstants(
            sumGrad: sumGrad, sumGradShifted: sumGradShifted, invStd: invStd, meanOffset: meanOffset,
            featureCount: c, gamma: weight?.value._pointer, valuesPerFeature: moments.count, usedBatchStatistics: true,
            gammaGrad: gammaGrad, betaGrad: betaGrad, gradScale: gradScale, inputScale: inputScale, constant: gradConstant)
        try group.allReduceSum(exchanged)
        sumGrad.update(from: sums, count: c)
        sumGradShifted.update(from: sums + c, count: c)
        BatchNormKernel.backwardConstants(
            sumGrad: sumGrad, sumGradShifted: sumGradShifted, invStd: invStd, meanOffset: meanOffset,
            featureCount: c, gamma: weight?.value._pointer, valuesPerFeature: moments.count, usedBatchStatistics: true,
            gammaGrad: nil, betaGrad: nil, gradScale: gradScale, inputScale: inputScale, constant: gradConstant)
    }
}
