// MARK: - Naive twins of the BatchNorm layers (compositions, not kernels)
//
// BatchNorm1d's forward and backward straight from the definitions, as
// one function each: the oracle of the layer tests and the baseline of the
// `bn.*` bench cases. The per-kernel twins are in BatchNormReference.swift.

extension BatchNormReference {
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

    /// Gradients of a BatchNorm layer.
    public struct Gradients: Sendable {
        /// `(N, C, L)`
        public var input: [Double]
        /// `[C]`
        public var gamma: [Double]
        /// `[C]`
        public var beta: [Double]
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
