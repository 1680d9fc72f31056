// Santurkar et al.'s (2018, arXiv:1805.11604, §2.2) measure of internal
// covariate shift: how much layer k's gradient changes when the layers before
// it take their gradient step first.

/// The change of one Linear's weight gradient when the earlier layers are updated.
struct CovariateShiftMeasure {
    /// 1-based index of the Linear (2 … the head).
    let layer: Int
    /// ‖G′ₖ − Gₖ‖ / ‖Gₖ‖ with Gₖ = ∂L/∂Wₖ at θ and G′ₖ the same after W₁…Wₖ₋₁ (and
    /// every parameter before Wₖ) moved by −lr·G.
    let relativeChange: Double
    /// cos(Gₖ, G′ₖ).
    let cosine: Double
}

extension Lab {
    /// Santurkar's ICS for every Linear after the first, on `inputs`/`labels`
    /// in the network's current mode, with a plain SGD step of `learningRate`.
    /// Parameters, gradients and running buffers are restored afterwards.
    func santurkarShift(_ network: FeedForwardNetwork, inputs: Tensor, labels: [Int32], learningRate: Double) throws -> [CovariateShiftMeasure] {
        let probe = try _GradientProbe(network: network, inputs: inputs, labels: labels)
        defer { probe.restore() }
        var offsets: [Int] = [], offset = 0
        for p in probe.parameters { offsets.append(offset); offset += p.value.count }
        let g = try probe.gradient(at: 0, along: [Double](repeating: 0, count: offset))
        var measures: [CovariateShiftMeasure] = []
        for (k, linear) in network.linears.enumerated().dropFirst() {
            guard let index = probe.parameters.firstIndex(where: { $0 === linear.weight }) else { continue }
            let start = offsets[index], end = start + linear.weight.value.count
            // move everything before layer k's weight by −lr·G, nothing else
            var step = [Double](repeating: 0, count: offset)
            for i in 0..<start { step[i] = -learningRate * g[i] }
            let moved = try probe.gradient(at: 1, along: step)
            var difference = 0.0, dot = 0.0, before = 0.0, after = 0.0
            for i in start..<end {
                difference += (moved[i] - g[i]) * (moved[i] - g[i])
                dot += moved[i] * g[i]; before += g[i] * g[i]; after += moved[i] * moved[i]
            }
            measures.append(CovariateShiftMeasure(layer: k + 1, relativeChange: (difference / max(before, 1e-300)).squareRoot(),
                                                  cosine: dot / max((before * after).squareRoot(), 1e-300)))
        }
        return measures
    }
}
