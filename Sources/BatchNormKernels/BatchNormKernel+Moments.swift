// MARK: - Batch statistics (training-mode forward, pass 1 of 2)

extension BatchNormKernel {
    /// Per-feature count, mean and M2 of a batch, in one read of `input`.
    ///
    /// Sums `d = x − shift` with `shift` = the batch's first value of each
    /// feature, so a feature with mean 1e4 and std 0.1 keeps its digits:
    /// mean = shift + Σd/n, M2 = Σd² − (Σd)²/n.
    ///
    /// - input: `(N, C, L)` row-major, N·L ≥ 1.
    /// - moments: overwritten; its feature count must be C.
    @inlinable
    public static func moments(
        _ input: UnsafePointer<Float>, shape: BatchNormShape, into moments: inout FeatureMoments
    ) {
        let c = shape.c, count = shape.valuesPerFeature
        precondition(moments.featureCount == c, "moments sized for \(moments.featureCount) features, batch has \(c)")
        precondition(count >= 1, "moments of an empty batch")
        moments.count = count
        moments.shift.withUnsafeMutableBufferPointer { shift in
            // shift = first value of each feature: sample 0, position 0
            for f in 0..<c { shift[f] = input[f * shape.l] }
            moments.mean.withUnsafeMutableBufferPointer { sumD in
                moments.m2.withUnsafeMutableBufferPointer { sumD2 in
                    moments._scratch.withUnsafeMutableBufferPointer { scratch in
                        _reducePairs(_MomentTerms.self, x: input, dy: input, shape: shape,
                                     shift: UnsafePointer(shift.baseAddress!),
                                     sum1: sumD.baseAddress!, sum2: sumD2.baseAddress!,
                                     scratch: scratch.baseAddress!)
                        // sums of shifted values → mean and M2
                        let n = Double(count)
                        for f in 0..<c {
                            let s1 = sumD[f], s2 = sumD2[f]
                            sumD[f] = Double(shift[f]) + s1 / n
                            sumD2[f] = max(0, s2 - s1 * s1 / n)
                        }
                    }
                }
            }
        }
    }
}
