/// Per-feature mergeable moments of a batch: count, mean and
/// M2 = Σ(x − mean)², kept in Double.
///
/// Partials from disjoint parts of a batch (threads now, processes for
/// SyncBatchNorm later) combine exactly with ``merge(_:)`` — Chan, Golub &
/// LeVeque's pairwise update — so no part ever needs the others' data.
///
/// `shift` holds one observed value per feature (the first one seen). The
/// kernels sum `x − shift` instead of `x`, which removes the catastrophic
/// cancellation of E[x²] − E[x]² for features such as mean 1e4, std 0.1.
public struct FeatureMoments: Sendable {
    /// Values per feature that went in (N·L for one batch).
    public var count: Int
    /// One observed value per feature; `[C]`.
    public var shift: [Float]
    /// Per-feature mean; `[C]`.
    public var mean: [Double]
    /// Per-feature sum of squared deviations from `mean`; `[C]`.
    public var m2: [Double]
    /// Float32 block accumulators for the kernels; `[2·C]`. Kept here so a
    /// training step allocates nothing.
    @usableFromInline var _scratch: [Float]

    /// Empty moments for `featureCount` features.
    public init(featureCount: Int) {
        count = 0
        shift = [Float](repeating: 0, count: featureCount)
        mean = [Double](repeating: 0, count: featureCount)
        m2 = [Double](repeating: 0, count: featureCount)
        _scratch = [Float](repeating: 0, count: 2 * featureCount)
    }

    /// Number of features C.
    @inlinable public var featureCount: Int { mean.count }

    /// Biased variance M2 / n of feature `c` — what normalization divides by.
    @inlinable public func biasedVariance(_ c: Int) -> Double {
        count > 0 ? m2[c] / Double(count) : .nan
    }

    /// Unbiased variance M2 / (n − 1) of feature `c` — what running_var tracks.
    @inlinable public func unbiasedVariance(_ c: Int) -> Double {
        count > 1 ? m2[c] / Double(count - 1) : .nan
    }

    // MARK: - Chan's merge

    /// Folds `other` (moments of a disjoint set of values) into `self`.
    ///
    /// n = nA + nB, δ = meanB − meanA, mean = meanA + δ·nB/n,
    /// M2 = M2A + M2B + δ²·nA·nB/n.
    public mutating func merge(_ other: FeatureMoments) {
        precondition(other.featureCount == featureCount, "merging moments of different feature counts")
        if other.count == 0 { return }
        if count == 0 { let scratch = _scratch; self = other; _scratch = scratch; return }
        let nA = Double(count), nB = Double(other.count), n = nA + nB
        for c in 0..<featureCount {
            let delta = other.mean[c] - mean[c]
            mean[c] += delta * nB / n
            m2[c] += other.m2[c] + delta * delta * nA * nB / n
        }
        count += other.count
    }
}
