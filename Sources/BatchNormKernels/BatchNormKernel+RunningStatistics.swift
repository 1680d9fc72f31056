// MARK: - Running statistics (PyTorch's convention)

extension BatchNormKernel {
    /// running ← (1 − f)·running + f·batch, per feature, with the unbiased
    /// batch variance M2/(n − 1) for running_var (normalization itself uses
    /// the biased M2/n).
    ///
    /// f = momentum (PyTorch's 0.1 weighs the new batch; Keras and the seed
    /// lesson write the same update as 0.9 on the old value). With momentum
    /// `nil`, f = 1/numBatchesTracked after incrementing: a cumulative average.
    ///
    /// - runningMean, runningVar: `[C]`, updated in place;
    ///   moments: the batch's, count ≥ 2 (a count of 1 has no unbiased variance).
    @inlinable
    public static func updateRunningStatistics(
        runningMean: UnsafeMutablePointer<Float>, runningVar: UnsafeMutablePointer<Float>,
        moments: FeatureMoments, momentum: Float?, numBatchesTracked: inout Int64
    ) {
        numBatchesTracked += 1
        let factor = momentum.map(Double.init) ?? 1 / Double(numBatchesTracked)
        let keep = 1 - factor
        // unbiasedVariance(c) = M2/(n − 1), NaN for n ≤ 1; pointer loop (vectorises)
        let denominator = moments.count > 1 ? Double(moments.count - 1) : .nan
        moments.mean.withUnsafeBufferPointer { mean in
            moments.m2.withUnsafeBufferPointer { m2 in
                for c in 0..<moments.featureCount {
                    runningMean[c] = Float(keep * Double(runningMean[c]) + factor * mean[c])
                    runningVar[c] = Float(keep * Double(runningVar[c]) + factor * (m2[c] / denominator))
                }
            }
        }
    }
}
