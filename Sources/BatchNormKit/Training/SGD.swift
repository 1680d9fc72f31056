/// Stochastic gradient descent with momentum, `torch.optim.SGD`:
///
///     g ← grad + weightDecay·p
///     b ← g (first step),  b ← momentum·b + (1 − dampening)·g (later)
///     g ← g + momentum·b (nesterov)  or  g ← b
///     p ← p − lr·g
///
/// Updates parameters only; BatchNorm's running buffers are never touched.
/// Momentum buffers are allocated on the first step and reused after it.
public final class SGD: Optimizer {
    /// The parameters ``step()`` updates, in order.
    public let parameters: [Parameter]
    /// lr; may be changed between steps (a schedule).
    public var learningRate: Float
    /// μ; 0 disables momentum buffers. A schedule may change it between steps (``setMomentum(_:)``).
    public private(set) var momentum: Float
    /// Weight (1 − dampening) of the new gradient in the momentum buffer.
    public let dampening: Float
    /// L2 penalty added to every gradient.
    public let weightDecay: Float
    /// Nesterov momentum (needs μ > 0 and dampening 0).
    public let nesterov: Bool
    /// PyTorch's `momentum_buffer` of every parameter, made by the first step.
    var momentumBuffers: _ParameterBuffers?

    /// PyTorch's defaults: momentum 0, dampening 0, weightDecay 0, nesterov false.
    public init(parameters: [Parameter], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) throws {
        try _checkLearningRate(learningRate)
        try _checkFiniteNonNegative(momentum, "momentum")
        try _checkFiniteNonNegative(weightDecay, "weight decay")
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

    /// One update of every parameter from its accumulated gradient.
    public func step() {
        let firstStep = momentum != 0 && momentumBuffers == nil
        if firstStep { momentumBuffers = _ParameterBuffers(like: parameters) }   // read (×0) by the first step
        for (index, p) in parameters.enumerated() {
            let w = p.value._pointer, grad = p.grad._pointer, n = p.value.count
            if momentum == 0 {
                _plainStep(w, grad, n)
            } else {
                _momentumStep(w, grad, momentumBuffers!.pointers[index], n, first: firstStep)
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

// MARK: - Scheduled momentum

extension SGD {
    /// Sets μ for the next steps (a OneCycleLR schedule). Buffers are made by
    /// the first step with μ ≠ 0, as PyTorch's.
    public func setMomentum(_ momentum: Double) { self.momentum = Float(momentum) }
}

// MARK: - State for checkpoints

extension SGD {
    /// `momentum_buffer.<name>` per parameter once a step with momentum has run.
    public func stateTensors(parameterNames: [String]) -> [String: SafeTensor] {
        momentumBuffers?.tensors(kind: "momentum_buffer", parameters: parameters, names: parameterNames) ?? [:]
    }

    /// Restores the momentum buffers; no entries means "before the first step".
    public func loadStateTensors(_ tensors: [String: SafeTensor], parameterNames: [String], path: String) throws {
        guard momentum != 0, tensors.keys.contains(where: { $0.hasPrefix("momentum_buffer.") }) else {
            momentumBuffers = nil
            return
        }
        let values = try _readStateBuffers(kinds: ["momentum_buffer"], from: tensors, parameters: parameters,
                                           names: parameterNames, path: path)
        let buffers = _ParameterBuffers(like: parameters)
        for (index, v) in values["momentum_buffer"]!.enumerated() { buffers.pointers[index].update(from: v, count: v.count) }
        momentumBuffers = buffers
    }
}
