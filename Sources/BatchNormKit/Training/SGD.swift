/// Stochastic gradient descent with momentum, `torch.optim.SGD`:
///
///     g ← grad + weightDecay·p
///     b ← g (first step),  b ← momentum·b + (1 − dampening)·g (later)
///     g ← g + momentum·b (nesterov)  or  g ← b
///     p ← p − lr·g
///
/// Updates parameters only; BatchNorm's running buffers are never touched.
/// Momentum buffers are allocated on the first step and reused after it.
public final class SGD {
    /// The parameters ``step()`` updates, in order.
    public let parameters: [Parameter]
    /// lr; may be changed between steps (a schedule).
    public var learningRate: Float
    /// μ; 0 disables momentum buffers.
    public let momentum: Float
    /// Weight (1 − dampening) of the new gradient in the momentum buffer.
    public let dampening: Float
    /// L2 penalty added to every gradient.
    public let weightDecay: Float
    /// Nesterov momentum (needs μ > 0 and dampening 0).
    public let nesterov: Bool
    private var momentumBuffers: [UnsafeMutablePointer<Float>] = []

    /// PyTorch's defaults: momentum 0, dampening 0, weightDecay 0, nesterov false.
    public init(parameters: [Parameter], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) throws {
        guard learningRate >= 0, learningRate.isFinite else {
            throw BatchNormKitError.invalidArgument(name: "learning rate", value: "\(learningRate)", requirement: "must be finite and ≥ 0")
        }
        guard momentum >= 0, momentum.isFinite else {
            throw BatchNormKitError.invalidArgument(name: "momentum", value: "\(momentum)", requirement: "must be finite and ≥ 0")
        }
        guard weightDecay >= 0, weightDecay.isFinite else {
            throw BatchNormKitError.invalidArgument(name: "weight decay", value: "\(weightDecay)", requirement: "must be finite and ≥ 0")
        }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw BatchNormKitError.invalidArgument(name: "nesterov", value: "true", requirement: "requires momentum > 0 and dampening 0")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    deinit { for b in momentumBuffers { b.deallocate() } }

    /// Sets every parameter's gradient to zero (PyTorch's `zero_grad`).
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// One update of every parameter from its accumulated gradient.
    public func step() {
        let firstStep = momentum != 0 && momentumBuffers.isEmpty
        if firstStep {
            momentumBuffers = parameters.map {
                let b = UnsafeMutablePointer<Float>.allocate(capacity: max($0.value.count, 1))
                b.initialize(repeating: 0, count: max($0.value.count, 1))   // read (×0) by the first step
                return b
            }
        }
        for (index, p) in parameters.enumerated() {
            let w = p.value._pointer, grad = p.grad._pointer, n = p.value.count
            if momentum == 0 {
                _plainStep(w, grad, n)
            } else {
                _momentumStep(w, grad, momentumBuffers[index], n, first: firstStep)
            }
        }
    }

    // Branch-free loops over raw pointers, so the compiler vectorizes them.

    /// p ← p − lr·(g + wd·p)
    private func _plainStep(_ w: UnsafeMutablePointer<Float>, _ grad: UnsafeMutablePointer<Float>, _ n: Int) {
        let lr = learningRate, wd = weightDecay
        for i in 0..<n { w[i] -= lr * (grad[i] + wd * w[i]) }
    }

    /// b ← g on the first step, else μ·b + (1 − dampening)·g;
    /// p ← p − lr·(nesterov ? g + μ·b : b) — one pass over p, grad and b.
    private func _momentumStep(_ w: UnsafeMutablePointer<Float>, _ grad: UnsafeMutablePointer<Float>,
                               _ b: UnsafeMutablePointer<Float>, _ n: Int, first: Bool) {
        let lr = learningRate, wd = weightDecay
        // b = keepB·b + keepG·g; step = stepG·g + stepB·b, branch-free per element
        let keepB: Float = first ? 0 : momentum, keepG: Float = first ? 1 : 1 - dampening
        let stepG: Float = nesterov ? 1 : 0, stepB: Float = nesterov ? momentum : 1
        for i in 0..<n {
            let g = grad[i] + wd * w[i]
            let buf = keepB * b[i] + keepG * g
            b[i] = buf
            w[i] -= lr * (stepG * g + stepB * buf)
        }
    }
}
