/// The curvature of a network's loss: the largest eigenvalues of the Hessian
/// of the mean cross-entropy on one fixed batch, with respect to every
/// parameter at once.
///
/// How: Lanczos iteration (full reorthogonalization) from a seeded random
/// unit vector, on Hessian-vector products from central differences of the
/// analytic gradient,
///
///     H·v ≈ (∇L(θ + εv) − ∇L(θ − εv)) / 2ε,   |v| = 1,
///
/// two forward/backward passes per step. The eigenvalues of Lanczos'
/// tridiagonal matrix (LAPACK `ssyevd`, ``symmetricEigenvalues(_:n:)``) — the
/// Ritz values — converge to the extreme eigenvalues first; 20 steps pin the
/// largest few. This is how the seed's claim that BatchNorm makes the loss
/// landscape smoother is measured (Santurkar et al., 2018, arXiv:1805.11604;
/// Ghorbani et al., 2019, arXiv:1901.10159): compare the top eigenvalue with
/// and without BatchNorm along training.
///
/// The network runs in its current mode (training mode: BatchNorm normalizes
/// with the batch's statistics, the loss training sees). Parameters, running
/// buffers and batch counters are restored afterwards, so measuring does not
/// change the model. Accuracy: Float32 gradients and a finite difference;
/// on a small seed network the top three agree with the full Double Hessian's
/// eigenvalues to 1e-5 relative (HessianSpectrumTests).
public enum HessianSpectrum {
    /// The `count` largest Ritz values after `steps` Lanczos steps, largest first.
    ///
    /// - Parameters:
    ///   - network: any layer stack ending in logits `(N, classes)`.
    ///   - inputs: `(N, features)`.
    ///   - labels: `[N]` class indices.
    ///   - count: how many eigenvalues to return (≥ 1).
    ///   - steps: Lanczos steps (≥ count; capped at the parameter count).
    ///   - epsilon: the finite-difference step along the unit vector v.
    ///   - seed: the start vector's seed.
    /// - Throws: what the network's forward or the loss throws for bad input;
    ///   `invalidArgument` for count < 1 or steps < count.
    public static func topEigenvalues(
        of network: Layer, inputs: Tensor, labels: [Int32],
        count: Int = 5, steps: Int = 20, epsilon: Double = 1e-3, seed: UInt64 = 0
    ) throws -> [Double] {
        guard count >= 1, steps >= count else {
            throw BatchNormKitError.invalidArgument(name: "steps", value: "\(steps)", requirement: "must be ≥ count (\(count)) ≥ 1")
        }
        let probe = try _GradientProbe(network: network, inputs: inputs, labels: labels)
        defer { probe.restore() }
        let n = probe.parameterCount, m = min(steps, n)
        // v₁: a seeded random unit vector
        var generator = SplitMix64(seed: seed)
        var v = (0..<n).map { _ in Double(generator.next() >> 11) / Double(1 << 53) - 0.5 }
        _scale(&v, by: 1 / _norm(v))
        var basis: [[Double]] = []
        var alphas: [Double] = [], betas: [Double] = []
        for j in 0..<m {
            basis.append(v)
            // w = H·v by central differences
            let plus = try probe.gradient(at: epsilon, along: v), minus = try probe.gradient(at: -epsilon, along: v)
            var w = zip(plus, minus).map { ($0 - $1) / (2 * epsilon) }
            let alpha = _dot(w, v)
            alphas.append(alpha)
            // full reorthogonalization (twice is enough) keeps the Ritz values clean
            for _ in 0..<2 { for q in basis { let c = _dot(w, q); for i in 0..<n { w[i] -= c * q[i] } } }
            let beta = _norm(w)
            if j == m - 1 || beta < 1e-10 { break }
            betas.append(beta)
            v = w
            _scale(&v, by: 1 / beta)
        }
        // eigenvalues of the tridiagonal T (α on the diagonal, β beside it)
        let k = alphas.count
        var t = [Float](repeating: 0, count: k * k)
        for i in 0..<k { t[i * k + i] = Float(alphas[i]) }
        for i in 0..<min(betas.count, k - 1) { t[i * k + i + 1] = Float(betas[i]); t[(i + 1) * k + i] = Float(betas[i]) }
        let ritz = try symmetricEigenvalues(t, n: k).map(Double.init)
        return Array(ritz.reversed().prefix(count))
    }

    @inline(__always) static func _dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    @inline(__always) static func _norm(_ a: [Double]) -> Double { _dot(a, a).squareRoot() }
    @inline(__always) static func _scale(_ a: inout [Double], by s: Double) { for i in a.indices { a[i] *= s } }
}

/// Evaluates ∇L at θ + t·v for the network's flattened parameters θ, and puts
/// everything back: parameters, running buffers, batch counters, gradients.
final class _GradientProbe {
    let network: Layer
    let inputs: Tensor
    let labels: [Int32]
    let parameters: [Parameter]
    let theta: [[Float]]
    let savedBuffers: [(Tensor, [Float])]
    let savedCounters: [(BatchCounting, Int64)]
    let savedGrads: [[Float]]
    let loss = CrossEntropyLoss()
    /// The loss of the last ``gradient(at:along:)``, L(θ + t·v).
    var lastLoss = Double.nan
    var parameterCount: Int { theta.reduce(0) { $0 + $1.count } }

    init(network: Layer, inputs: Tensor, labels: [Int32]) throws {
        self.network = network
        self.inputs = inputs
        self.labels = labels
        parameters = network.parameters()
        theta = parameters.map(\.value.scalars)
        savedGrads = parameters.map(\.grad.scalars)
        var buffers: [(Tensor, [Float])] = [], counters: [(BatchCounting, Int64)] = []
        for (_, entry) in network.namedStateEntries(prefix: "") {
            switch entry {
            case .buffer(let t): buffers.append((t, t.scalars))
            case .batchCounter(let norm): counters.append((norm, norm.numBatchesTracked))
            case .parameter: break
            }
        }
        savedBuffers = buffers
        savedCounters = counters
    }

    /// ∇L(θ + t·v), flattened in parameter order.
    func gradient(at t: Double, along v: [Double]) throws -> [Double] {
        var offset = 0
        for (p, base) in zip(parameters, theta) {
            p.value.withUnsafeMutableBufferPointer { w in
                for i in 0..<base.count { w[i] = Float(Double(base[i]) + t * v[offset + i]) }
            }
            offset += base.count
            p.zeroGrad()
        }
        lastLoss = Double(try loss.forward(logits: try network.forward(inputs), labels: labels))
        _ = try network.backward(try loss.backward(), needsInputGradient: false)
        return parameters.flatMap { $0.grad.scalars.map(Double.init) }
    }

    func restore() {
        for (p, (base, grad)) in zip(parameters, zip(theta, savedGrads)) {
            p.value.withUnsafeMutableBufferPointer { w in for i in 0..<base.count { w[i] = base[i] } }
            p.grad.withUnsafeMutableBufferPointer { g in for i in 0..<grad.count { g[i] = grad[i] } }
        }
        for (t, values) in savedBuffers { t.withUnsafeMutableBufferPointer { b in for i in 0..<values.count { b[i] = values[i] } } }
        for (norm, count) in savedCounters { norm.numBatchesTracked = count }
    }
}
