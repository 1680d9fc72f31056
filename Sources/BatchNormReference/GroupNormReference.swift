/// Naive twins of ``GroupNormKernel``'s forward, normalize and backward, and
/// of their ReLU-fused forms (LayerNorm, GroupNorm, InstanceNorm): plain loops, Double, two-pass statistics.
/// Layout: row-major `(N, C, L)`, C split into `groups` groups of
/// consecutive channels; statistics per (sample, group).
public enum GroupNormReference {
    /// Index of element (sample, channel, position) in a row-major (N, C, L) array.
    @inline(__always)
    static func index(_ sample: Int, _ channel: Int, _ position: Int, c: Int, l: Int) -> Int {
        (sample * c + channel) * l + position
    }

    /// Mean and 1/√(σ² + ε) of every (sample, group), σ² biased; `[N·G]` each.
    public static func statistics<T: BinaryFloatingPoint>(
        _ x: [T], n: Int, c: Int, groups: Int, l: Int, eps: Double
    ) -> (mean: [Double], invStd: [Double]) {
        let k = c / groups, m = Double(k * l)
        var mean = [Double](), invStd = [Double]()
        for sample in 0..<n {
            for group in 0..<groups {
                var sum = 0.0
                for channel in group * k..<(group + 1) * k {
                    for p in 0..<l { sum += Double(x[index(sample, channel, p, c: c, l: l)]) }
                }
                let mu = sum / m
                var squares = 0.0
                for channel in group * k..<(group + 1) * k {
                    for p in 0..<l {
                        let d = Double(x[index(sample, channel, p, c: c, l: l)]) - mu
                        squares += d * d
                    }
                }
                mean.append(mu)
                invStd.append(1 / (squares / m + eps).squareRoot())
            }
        }
        return (mean, invStd)
    }

    /// y = (x − μ)·invStd·γ + β per (sample, group); γ = 1, β = 0 when nil.
    public static func forward<T: BinaryFloatingPoint>(
        _ x: [T], n: Int, c: Int, groups: Int, l: Int, gamma: [Double]?, beta: [Double]?, eps: Double
    ) -> [Double] {
        let stats = statistics(x, n: n, c: c, groups: groups, l: l, eps: eps)
        return normalize(x, n: n, c: c, groups: groups, l: l, gamma: gamma, beta: beta, mean: stats.mean, invStd: stats.invStd)
    }

    /// y = (x − mean)·invStd·γ + β with given per-(sample, group) statistics
    /// (`[N·G]` each) instead of the batch's: the twin of `GroupNormKernel.normalize`.
    public static func normalize<T: BinaryFloatingPoint>(
        _ x: [T], n: Int, c: Int, groups: Int, l: Int, gamma: [Double]?, beta: [Double]?,
        mean: [Double], invStd: [Double]
    ) -> [Double] {
        let k = c / groups
        var y = [Double](repeating: 0, count: x.count)
        for sample in 0..<n {
            for channel in 0..<c {
                let row = sample * groups + channel / k
                for p in 0..<l {
                    let i = index(sample, channel, p, c: c, l: l)
                    y[i] = (Double(x[i]) - mean[row]) * invStd[row] * (gamma?[channel] ?? 1) + (beta?[channel] ?? 0)
                }
            }
        }
        return y
    }

    /// dx, dγ, dβ for upstream gradient dy, from the forward's definition:
    /// dx = s·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) over each (sample, group),
    /// dγ_c = Σdy·x̂, dβ_c = Σdy over every sample and position of channel c.
    public static func backward<T: BinaryFloatingPoint>(
        gradOutput dy: [T], input x: [T], n: Int, c: Int, groups: Int, l: Int, gamma: [Double]?, eps: Double
    ) -> (gradInput: [Double], gammaGrad: [Double], betaGrad: [Double]) {
        let stats = statistics(x, n: n, c: c, groups: groups, l: l, eps: eps)
        let k = c / groups, m = Double(k * l)
        var dx = [Double](repeating: 0, count: x.count)
        var dGamma = [Double](repeating: 0, count: c), dBeta = [Double](repeating: 0, count: c)
        func xhat(_ i: Int, _ row: Int) -> Double { (Double(x[i]) - stats.mean[row]) * stats.invStd[row] }
        for sample in 0..<n {
            for group in 0..<groups {
                let row = sample * groups + group, channels = group * k..<(group + 1) * k
                var meanG = 0.0, meanGX = 0.0
                for channel in channels {
                    for p in 0..<l {
                        let i = index(sample, channel, p, c: c, l: l)
                        let g = Double(dy[i]) * (gamma?[channel] ?? 1)
                        meanG += g / m; meanGX += g * xhat(i, row) / m
                        dGamma[channel] += Double(dy[i]) * xhat(i, row)
                        dBeta[channel] += Double(dy[i])
                    }
                }
                for channel in channels {
                    for p in 0..<l {
                        let i = index(sample, channel, p, c: c, l: l)
                        let g = Double(dy[i]) * (gamma?[channel] ?? 1)
                        dx[i] = stats.invStd[row] * (g - meanG - xhat(i, row) * meanGX)
                    }
                }
            }
        }
        return (dx, dGamma, dBeta)
    }

    /// `forward`, then ReLU: max(0, y) (NaN kept), the twin of `GroupNormKernel.forwardReLU`.
    public static func forwardReLU<T: BinaryFloatingPoint>(
        _ x: [T], n: Int, c: Int, groups: Int, l: Int, gamma: [Double]?, beta: [Double]?, eps: Double
    ) -> [Double] {
        forward(x, n: n, c: c, groups: groups, l: l, gamma: gamma, beta: beta, eps: eps).map { $0 < 0 ? 0 : $0 }
    }

    /// `backward` of the ReLU-masked gradient dy·[y > 0] (y: the fused
    /// forward's output, `(N, C, L)`; 0 where y ≤ 0 or NaN): the twin of
    /// `GroupNormKernel.backwardReLU`.
    public static func backwardReLU<T: BinaryFloatingPoint>(
        gradOutput dy: [T], output y: [T], input x: [T], n: Int, c: Int, groups: Int, l: Int, gamma: [Double]?, eps: Double
    ) -> (gradInput: [Double], gammaGrad: [Double], betaGrad: [Double]) {
        backward(gradOutput: zip(dy, y).map { $1 > 0 ? $0 : 0 }, input: x, n: n, c: c, groups: groups, l: l,
                 gamma: gamma, eps: eps)
    }
}
