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
                        _reducePairs(_MomentTerms.self,
                                     _PairArrays(x: input, dy: input, shift: UnsafePointer(shift.baseAddress!),
                                                 scale: UnsafePointer(shift.baseAddress!), bias: UnsafePointer(shift.baseAddress!),
                                                 sum1: sumD.baseAddress!, sum2: sumD2.baseAddress!,
                                                 scratch: scratch.baseAddress!),
                                     shape: shape)
                        // sums of shifted values → mean and M2
                        let n = Double(count)
                        var overflowed: UInt8 = 0
                        for f in 0..<c {
                            let s1 = sumD[f], s2 = sumD2[f]
                            overflowed |= (s1 + s2).isFinite ? 0 : 1
                            sumD[f] = Double(shift[f]) + s1 / n
                            sumD2[f] = max(0, s2 - s1 * s1 / n)
                        }
                        if overflowed != 0 {
                            _momentsInDouble(input, shape: shape, shift: UnsafePointer(shift.baseAddress!),
                                             mean: sumD.baseAddress!, m2: sumD2.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    /// The features whose Float32 sums overflowed (|x − shift| ≳ 1.8e19, so
    /// d² exceeds Float32), again in Double, two-pass: mean, then Σ(x − mean)².
    /// Any finite Float32 input has finite Double moments; the common path
    /// pays one finiteness test per feature.
    @usableFromInline @inline(never)
    static func _momentsInDouble(
        _ input: UnsafePointer<Float>, shape: BatchNormShape, shift: UnsafePointer<Float>,
        mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>
    ) {
        let c = shape.c, l = shape.l, count = Double(shape.valuesPerFeature)
        for f in 0..<c where !(mean[f].isFinite && m2[f].isFinite) {
            var sum = 0.0
            for sample in 0..<shape.n {
                let run = input + (sample * c + f) * l
                for i in 0..<l { sum += Double(run[i]) }
            }
            let mu = sum / count
            var squares = 0.0
            for sample in 0..<shape.n {
                let run = input + (sample * c + f) * l
                for i in 0..<l { let d = Double(run[i]) - mu; squares += d * d }
            }
            mean[f] = mu
            m2[f] = squares
        }
    }
}
