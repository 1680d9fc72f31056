/// Naive, obviously correct twins of the fast kernels: plain loops,
/// Double accumulation, two-pass statistics, arrays in and out.
///
/// Each function carries the name of the fast kernel it mirrors
/// (`BatchNormKernel.moments` ↔ `BatchNormReference.moments`, …). Tests use
/// them as the oracle; `make bench` uses them as the baseline. Nothing here
/// is meant to be fast. Layout is row-major `(N, C, L)` (L = 1 for 2-D).
public enum BatchNormReference {
    /// Index of element (sample, feature, position) in a row-major (N, C, L) array.
    @inline(__always)
    static func index(_ sample: Int, _ feature: Int, _ position: Int, c: Int, l: Int) -> Int {
        (sample * c + feature) * l + position
    }
}

// MARK: - Statistics

extension BatchNormReference {
    /// Per-feature statistics of a batch, two-pass in Double.
    public struct Moments: Sendable {
        /// Values per feature, N·L.
        public var count: Int
        /// `[C]`
        public var mean: [Double]
        /// Σ(x − mean)² per feature; `[C]`.
        public var m2: [Double]
        /// M2 / n; `[C]`.
        public var biasedVariance: [Double] { m2.map { $0 / Double(count) } }
        /// M2 / (n − 1); `[C]`.
        public var unbiasedVariance: [Double] { m2.map { $0 / Double(count - 1) } }

        /// Moments with the given values (e.g. the fast kernel's, to feed a twin).
        public init(count: Int, mean: [Double], m2: [Double]) {
            self.count = count; self.mean = mean; self.m2 = m2
        }
    }

    /// Mean, then Σ(x − mean)², per feature. input: `(N, C, L)`.
    public static func moments<T: BinaryFloatingPoint>(_ input: [T], n: Int, c: Int, l: Int = 1) -> Moments {
        var mean = [Double](repeating: 0, count: c)
        var m2 = [Double](repeating: 0, count: c)
        let count = n * l
        for f in 0..<c {
            var sum = 0.0
            for s in 0..<n { for p in 0..<l { sum += Double(input[index(s, f, p, c: c, l: l)]) } }
            mean[f] = sum / Double(count)
            var squares = 0.0
            for s in 0..<n {
                for p in 0..<l {
                    let d = Double(input[index(s, f, p, c: c, l: l)]) - mean[f]
                    squares += d * d
                }
            }
            m2[f] = squares
        }
        return Moments(count: count, mean: mean, m2: m2)
    }

    /// PyTorch's running-statistics update: running ← (1 − f)·running + f·batch,
    /// f = momentum, or 1/numBatchesTracked (after incrementing) when momentum is nil;
    /// running_var takes the unbiased batch variance.
    public static func updateRunningStatistics(
        runningMean: inout [Double], runningVar: inout [Double],
        moments: Moments, momentum: Double?, numBatchesTracked: inout Int
    ) {
        numBatchesTracked += 1
        let f = momentum ?? 1 / Double(numBatchesTracked)
        let unbiased = moments.unbiasedVariance
        for c in runningMean.indices {
            runningMean[c] = (1 - f) * runningMean[c] + f * moments.mean[c]
            runningVar[c] = (1 - f) * runningVar[c] + f * unbiased[c]
        }
    }
}

// MARK: - Forward

extension BatchNormReference {
    /// y = (x − shift)·scale + bias per feature. input: `(N, C, L)`; the rest `[C]`.
    public static func normalizeAffine<T: BinaryFloatingPoint>(
        _ input: [T], n: Int, c: Int, l: Int = 1,
        shift: [Double], scale: [Double], bias: [Double]
    ) -> [Double] {
        var out = [Double](repeating: 0, count: input.count)
        for s in 0..<n {
            for f in 0..<c {
                for p in 0..<l {
                    let i = index(s, f, p, c: c, l: l)
                    out[i] = (Double(input[i]) - shift[f]) * scale[f] + bias[f]
                }
            }
        }
        return out
    }

    /// y = max(0, (x − shift)·scale + bias) per feature: `normalizeAffine`
    /// then ReLU, in Double. input: `(N, C, L)`; the rest `[C]`.
    public static func normalizeAffineReLU<T: BinaryFloatingPoint>(
        _ input: [T], n: Int, c: Int, l: Int = 1,
        shift: [Double], scale: [Double], bias: [Double]
    ) -> [Double] {
        normalizeAffine(input, n: n, c: c, l: l, shift: shift, scale: scale, bias: bias).map { $0 < 0 ? 0 : $0 }
    }

    /// The per-feature constants of `normalizeAffine` from a batch's moments
    /// (train): invStd = 1/√(M2/n + ε), meanOffset = mean − shift,
    /// scale = γ·invStd, bias = β − meanOffset·γ·invStd; γ = 1, β = 0 when nil.
    /// All `[C]`.
    public static func forwardConstants(
        moments: Moments, shift: [Double], gamma: [Double]?, beta: [Double]?, eps: Double
    ) -> (scale: [Double], bias: [Double], invStd: [Double], meanOffset: [Double]) {
        let c = moments.mean.count
        let invStd = moments.biasedVariance.map { 1 / ($0 + eps).squareRoot() }
        let meanOffset = (0..<c).map { moments.mean[$0] - shift[$0] }
        let scale = (0..<c).map { (gamma?[$0] ?? 1) * invStd[$0] }
        let bias = (0..<c).map { (beta?[$0] ?? 0) - meanOffset[$0] * scale[$0] }
        return (scale, bias, invStd, meanOffset)
    }

    /// The same from the running buffers (eval): invStd = 1/√(running_var + ε),
    /// meanOffset = 0 (the shift is running_mean), scale = γ·invStd, bias = β.
    public static func forwardConstants(
        runningVar: [Double], gamma: [Double]?, beta: [Double]?, eps: Double
    ) -> (scale: [Double], bias: [Double], invStd: [Double], meanOffset: [Double]) {
        let c = runningVar.count
        let invStd = runningVar.map { 1 / ($0 + eps).squareRoot() }
        return ((0..<c).map { (gamma?[$0] ?? 1) * invStd[$0] }, (0..<c).map { beta?[$0] ?? 0 },
                invStd, [Double](repeating: 0, count: c))
    }
}

// MARK: - Backward

extension BatchNormReference {
    /// Σdy and Σdy·(x − shift) per feature. gradOutput, input: `(N, C, L)`.
    public static func backwardReduce<T: BinaryFloatingPoint>(
        gradOutput: [T], input: [T], n: Int, c: Int, l: Int = 1, shift: [Double]
    ) -> (sumGrad: [Double], sumGradShifted: [Double]) {
        var s1 = [Double](repeating: 0, count: c), s2 = [Double](repeating: 0, count: c)
        for s in 0..<n {
            for f in 0..<c {
                for p in 0..<l {
                    let i = index(s, f, p, c: c, l: l)
                    s1[f] += Double(gradOutput[i])
                    s2[f] += Double(gradOutput[i]) * (Double(input[i]) - shift[f])
                }
            }
        }
        return (s1, s2)
    }

    /// dx = gradScale·dy + inputScale·(x − shift) + constant per feature.
    public static func backwardInput<T: BinaryFloatingPoint>(
        gradOutput: [T], input: [T], n: Int, c: Int, l: Int = 1,
        shift: [Double], gradScale: [Double], inputScale: [Double], constant: [Double]
    ) -> [Double] {
        var dx = [Double](repeating: 0, count: input.count)
        for s in 0..<n {
            for f in 0..<c {
                for p in 0..<l {
                    let i = index(s, f, p, c: c, l: l)
                    dx[i] = Double(gradOutput[i]) * gradScale[f]
                        + (Double(input[i]) - shift[f]) * inputScale[f] + constant[f]
                }
            }
        }
        return dx
    }

    /// `backwardReduce` of the ReLU-masked gradient dy·[p > 0], p = (x −
    /// shift)·scale + bias the fused forward's pre-activation (the ReLU's
    /// output y = max(0, p) is positive exactly there; 0 where p ≤ 0 or NaN),
    /// p in Double. All `(N, C, L)` but shift, scale, bias `[C]`.
    public static func backwardReduceReLU<T: BinaryFloatingPoint>(
        gradOutput: [T], input: [T], n: Int, c: Int, l: Int = 1,
        shift: [Double], scale: [Double], bias: [Double]
    ) -> (sumGrad: [Double], sumGradShifted: [Double]) {
        let masked = reluMasked(gradOutput, normalizeAffine(input, n: n, c: c, l: l, shift: shift, scale: scale, bias: bias))
        return backwardReduce(gradOutput: masked, input: input, n: n, c: c, l: l, shift: shift)
    }

    /// `backwardInput` of the ReLU-masked gradient dy·[p > 0], p as in
    /// `backwardReduceReLU`.
    public static func backwardInputReLU<T: BinaryFloatingPoint>(
        gradOutput: [T], input: [T], n: Int, c: Int, l: Int = 1, shift: [Double], scale: [Double], bias: [Double],
        gradScale: [Double], inputScale: [Double], constant: [Double]
    ) -> [Double] {
        let masked = reluMasked(gradOutput, normalizeAffine(input, n: n, c: c, l: l, shift: shift, scale: scale, bias: bias))
        return backwardInput(gradOutput: masked, input: input, n: n, c: c, l: l,
                             shift: shift, gradScale: gradScale, inputScale: inputScale, constant: constant)
    }

    /// dy·[y > 0], elementwise (ReLU's backward, PyTorch's threshold_backward).
    static func reluMasked<T: BinaryFloatingPoint>(_ dy: [T], _ y: [Double]) -> [T] {
        zip(dy, y).map { $1 > 0 ? $0 : 0 }
    }

    /// dγ, dβ and the constants of `backwardInput` from the sums of
    /// `backwardReduce` (taken with shift = mean − meanOffset), m = N·L:
    /// with B = Σdy·(x − μ) = sumGradShifted − meanOffset·sumGrad,
    /// dγ = invStd·B, dβ = Σdy, gradScale = g = γ·invStd; with batch statistics
    /// inputScale = −g·invStd²·B/m, constant = −g·Σdy/m − inputScale·meanOffset,
    /// else both 0. γ = 1 when nil. All `[C]`.
    public static func backwardConstants(
        sumGrad: [Double], sumGradShifted: [Double], invStd: [Double], meanOffset: [Double],
        gamma: [Double]?, valuesPerFeature m: Int, usedBatchStatistics: Bool
    ) -> (gammaGrad: [Double], betaGrad: [Double], gradScale: [Double], inputScale: [Double], constant: [Double]) {
        let c = sumGrad.count, count = Double(m)
        let centred = (0..<c).map { sumGradShifted[$0] - meanOffset[$0] * sumGrad[$0] }
        let gradScale = (0..<c).map { (gamma?[$0] ?? 1) * invStd[$0] }
        guard usedBatchStatistics else {
            let zeros = [Double](repeating: 0, count: c)
            return ((0..<c).map { invStd[$0] * centred[$0] }, sumGrad, gradScale, zeros, zeros)
        }
        let inputScale = (0..<c).map { -gradScale[$0] * invStd[$0] * invStd[$0] * centred[$0] / count }
        let constant = (0..<c).map { -gradScale[$0] * sumGrad[$0] / count - inputScale[$0] * meanOffset[$0] }
        return ((0..<c).map { invStd[$0] * centred[$0] }, sumGrad, gradScale, inputScale, constant)
    }

}
