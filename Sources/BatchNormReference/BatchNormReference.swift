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

    /// Training-mode BatchNorm straight from the definition:
    /// y = γ·(x − μ_B)/√(σ²_B + ε) + β with the batch's biased variance.
    public static func forwardTrain<T: BinaryFloatingPoint>(
        _ input: [T], n: Int, c: Int, l: Int = 1,
        gamma: [Double], beta: [Double], eps: Double
    ) -> [Double] {
        let m = moments(input, n: n, c: c, l: l)
        let v = m.biasedVariance
        let scale = (0..<c).map { gamma[$0] / (v[$0] + eps).squareRoot() }
        return normalizeAffine(input, n: n, c: c, l: l, shift: m.mean, scale: scale, bias: beta)
    }

    /// Eval-mode BatchNorm: y = γ·(x − running_mean)/√(running_var + ε) + β.
    public static func forwardEval<T: BinaryFloatingPoint>(
        _ input: [T], n: Int, c: Int, l: Int = 1,
        runningMean: [Double], runningVar: [Double], gamma: [Double], beta: [Double], eps: Double
    ) -> [Double] {
        let scale = (0..<c).map { gamma[$0] / (runningVar[$0] + eps).squareRoot() }
        return normalizeAffine(input, n: n, c: c, l: l, shift: runningMean, scale: scale, bias: beta)
    }
}

// MARK: - Backward

extension BatchNormReference {
    /// Gradients of a BatchNorm layer.
    public struct Gradients: Sendable {
        /// `(N, C, L)`
        public var input: [Double]
        /// `[C]`
        public var gamma: [Double]
        /// `[C]`
        public var beta: [Double]
    }

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

    /// Training-mode backward from the textbook formula (Ioffe & Szegedy 2015):
    /// dx = γ/(m·σ̂)·(m·dy − Σdy − x̂·Σ(dy·x̂)), dγ = Σdy·x̂, dβ = Σdy, m = N·L.
    public static func backwardTrain<T: BinaryFloatingPoint>(
        gradOutput: [T], input: [T], n: Int, c: Int, l: Int = 1,
        gamma: [Double], eps: Double
    ) -> Gradients {
        let mo = moments(input, n: n, c: c, l: l)
        let v = mo.biasedVariance
        let m = Double(n * l)
        var g = Gradients(input: [Double](repeating: 0, count: input.count),
                          gamma: [Double](repeating: 0, count: c), beta: [Double](repeating: 0, count: c))
        for f in 0..<c {
            let sigma = (v[f] + eps).squareRoot()
            var sumDy = 0.0, sumDyXhat = 0.0
            for s in 0..<n {
                for p in 0..<l {
                    let i = index(s, f, p, c: c, l: l)
                    let xhat = (Double(input[i]) - mo.mean[f]) / sigma
                    sumDy += Double(gradOutput[i]); sumDyXhat += Double(gradOutput[i]) * xhat
                }
            }
            g.beta[f] = sumDy; g.gamma[f] = sumDyXhat
            for s in 0..<n {
                for p in 0..<l {
                    let i = index(s, f, p, c: c, l: l)
                    let xhat = (Double(input[i]) - mo.mean[f]) / sigma
                    g.input[i] = gamma[f] / (m * sigma) * (m * Double(gradOutput[i]) - sumDy - xhat * sumDyXhat)
                }
            }
        }
        return g
    }

    /// Eval-mode backward: dx = γ·dy/√(running_var + ε), dγ = Σdy·x̂, dβ = Σdy.
    public static func backwardEval<T: BinaryFloatingPoint>(
        gradOutput: [T], input: [T], n: Int, c: Int, l: Int = 1,
        runningMean: [Double], runningVar: [Double], gamma: [Double], eps: Double
    ) -> Gradients {
        var g = Gradients(input: [Double](repeating: 0, count: input.count),
                          gamma: [Double](repeating: 0, count: c), beta: [Double](repeating: 0, count: c))
        for f in 0..<c {
            let sigma = (runningVar[f] + eps).squareRoot()
            for s in 0..<n {
                for p in 0..<l {
                    let i = index(s, f, p, c: c, l: l)
                    let dy = Double(gradOutput[i])
                    g.beta[f] += dy
                    g.gamma[f] += dy * (Double(input[i]) - runningMean[f]) / sigma
                    g.input[i] = gamma[f] * dy / sigma
                }
            }
        }
        return g
    }
}
