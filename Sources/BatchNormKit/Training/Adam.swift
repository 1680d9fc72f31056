import Foundation

/// Adam, `torch.optim.Adam` (Kingma & Ba, "Adam: A Method for Stochastic
/// Optimization", 2015), with PyTorch's update for step t = 1, 2, …:
///
///     g ← grad + weightDecay·p                 (Adam: L2 penalty in the gradient)
///     p ← p·(1 − lr·weightDecay)               (AdamW: decoupled decay, instead)
///     m ← β₁·m + (1 − β₁)·g
///     v ← β₂·v + (1 − β₂)·g²
///     v̂ ← max(v̂, v)  (amsgrad; v̂ replaces v below)
///     p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// Defaults are PyTorch's: lr 0.001, betas (0.9, 0.999), eps 1e-8, weight
/// decay 0 (``AdamW``: 0.01), amsgrad false. The moment buffers (`exp_avg`,
/// `exp_avg_sq`, `max_exp_avg_sq`) are allocated by the first step and reused;
/// the bias corrections are computed in Double once per step, as PyTorch
/// computes them in Python floats. Updates parameters only.
public class Adam: Optimizer {
    /// The parameters ``step()`` updates, in order.
    public let parameters: [Parameter]
    /// lr; may be changed between steps (a schedule).
    public var learningRate: Float
    /// (β₁, β₂): decay rates of the first and second moment estimates. Double,
    /// as PyTorch's Python floats: 1 − β₂ = 0.001 is then the Float32 nearest
    /// 0.001, not 1 − Float(0.999) (which is 1.3e-5 off).
    /// A schedule may change β₁ between steps (``setMomentum(_:)``).
    public private(set) var betas: (Double, Double)
    /// ε, added to the denominator for stability.
    public let eps: Float
    /// L2 penalty in the gradient (Adam) or decoupled decay rate (AdamW).
    public let weightDecay: Float
    /// Use the running maximum of the second moment (Reddi et al., 2018).
    public let amsgrad: Bool
    /// Steps taken, t (PyTorch's per-parameter `step`, the same for all here).
    public private(set) var stepCount: Int64 = 0
    /// Whether weight decay is decoupled from the gradient (``AdamW``).
    let decoupledWeightDecay: Bool
    var expAvg: _ParameterBuffers?
    var expAvgSq: _ParameterBuffers?
    var maxExpAvgSq: _ParameterBuffers?

    /// - Throws: `invalidArgument` for a learning rate, eps or weight decay
    ///   that is negative or not finite, or a beta outside [0, 1).
    public convenience init(parameters: [Parameter], learningRate: Float = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0, amsgrad: Bool = false) throws {
        try self.init(parameters: parameters, learningRate: learningRate, betas: betas, eps: eps,
                      weightDecay: weightDecay, amsgrad: amsgrad, decoupled: false)
    }

    init(parameters: [Parameter], learningRate: Float, betas: (Double, Double), eps: Float,
         weightDecay: Float, amsgrad: Bool, decoupled: Bool) throws {
        try _checkLearningRate(learningRate)
        for (index, beta) in [betas.0, betas.1].enumerated() where !(beta >= 0 && beta < 1) {
            throw BatchNormKitError.invalidArgument(name: "beta\(index + 1)", value: "\(beta)", requirement: "must be in [0, 1)")
        }
        try _checkFiniteNonNegative(eps, "eps")
        try _checkFiniteNonNegative(weightDecay, "weight decay")
        self.parameters = parameters
        self.learningRate = learningRate
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.amsgrad = amsgrad
        decoupledWeightDecay = decoupled
    }

    /// One update of every parameter from its accumulated gradient.
    public func step() {
        if expAvg == nil {
            expAvg = _ParameterBuffers(like: parameters)
            expAvgSq = _ParameterBuffers(like: parameters)
            if amsgrad { maxExpAvgSq = _ParameterBuffers(like: parameters) }
        }
        stepCount += 1
        let t = Double(stepCount)
        let biasCorrection1 = 1 - pow(betas.0, t)
        let biasCorrection2Sqrt = (1 - pow(betas.1, t)).squareRoot()
        let scalars = _AdamScalars(
            stepSize: Float(Double(learningRate) / biasCorrection1), correction2Sqrt: Float(biasCorrection2Sqrt),
            beta2: Float(betas.1), oneMinusBeta1: Float(1 - betas.0), oneMinusBeta2: Float(1 - betas.1), eps: eps,
            gradientDecay: decoupledWeightDecay ? 0 : weightDecay,
            parameterScale: decoupledWeightDecay ? 1 - learningRate * weightDecay : 1)
        let m = expAvg!, v = expAvgSq!, vMax = maxExpAvgSq
        for (index, p) in parameters.enumerated() {
            _adamStep(p.value._pointer, p.grad._pointer, m.pointers[index], v.pointers[index],
                      vMax?.pointers[index], p.value.count, scalars)
        }
    }
}

/// AdamW, `torch.optim.AdamW` (Loshchilov & Hutter, "Decoupled Weight Decay
/// Regularization", 2019): ``Adam`` with the weight decay applied to the
/// parameters, p ← p·(1 − lr·weightDecay), instead of added to the gradient.
/// PyTorch's defaults, including weight decay 0.01.
public final class AdamW: Adam {
    /// - Throws: as ``Adam``.
    public init(parameters: [Parameter], learningRate: Float = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 1e-2, amsgrad: Bool = false) throws {
        try super.init(parameters: parameters, learningRate: learningRate, betas: betas, eps: eps,
                       weightDecay: weightDecay, amsgrad: amsgrad, decoupled: true)
    }
}

// MARK: - The update

/// A step's constants, computed once for every parameter.
struct _AdamScalars {
    /// lr / (1 − β₁ᵗ)
    let stepSize: Float
    /// √(1 − β₂ᵗ)
    let correction2Sqrt: Float
    /// β₂, 1 − β₁ and 1 − β₂, each rounded once from Double (as PyTorch's Python floats).
    let beta2: Float, oneMinusBeta1: Float, oneMinusBeta2: Float
    let eps: Float
    /// Adam's L2 term (0 for AdamW).
    let gradientDecay: Float
    /// AdamW's 1 − lr·wd (1 for Adam).
    let parameterScale: Float
}

/// One pass over p, grad, m, v (and v̂) of n values: the formula of ``Adam``.
/// The operations are PyTorch's, in its order (√v divided by √(1 − β₂ᵗ),
/// then + ε; the step size times m, then divided), so the last bits agree.
@inline(__always)
func _adamStep(_ w: UnsafeMutablePointer<Float>, _ grad: UnsafeMutablePointer<Float>,
               _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
               _ vMax: UnsafeMutablePointer<Float>?, _ n: Int, _ s: _AdamScalars) {
    let correction2Sqrt = s.correction2Sqrt
    let oneMinusBeta1 = s.oneMinusBeta1, oneMinusBeta2 = s.oneMinusBeta2
    if let vMax {
        for i in 0..<n {
            let p = w[i] * s.parameterScale
            let g = grad[i] + s.gradientDecay * p
            let mi = m[i] + oneMinusBeta1 * (g - m[i])          // lerp, as torch's exp_avg.lerp_
            let vi = s.beta2 * v[i] + oneMinusBeta2 * g * g
            let vHat = max(vMax[i], vi)
            m[i] = mi; v[i] = vi; vMax[i] = vHat
            w[i] = p - s.stepSize * mi / (vHat.squareRoot() / correction2Sqrt + s.eps)
        }
    } else {
        for i in 0..<n {
            let p = w[i] * s.parameterScale
            let g = grad[i] + s.gradientDecay * p
            let mi = m[i] + oneMinusBeta1 * (g - m[i])
            let vi = s.beta2 * v[i] + oneMinusBeta2 * g * g
            m[i] = mi; v[i] = vi
            w[i] = p - s.stepSize * mi / (vi.squareRoot() / correction2Sqrt + s.eps)
        }
    }
}

// MARK: - Scheduled momentum

extension Adam {
    /// Sets β₁ for the next steps (a OneCycleLR schedule, as PyTorch's cycles `betas[0]`).
    public func setMomentum(_ momentum: Double) { betas.0 = momentum }
}

// MARK: - State for checkpoints

extension Adam {
    /// `exp_avg.<name>`, `exp_avg_sq.<name>` (and `max_exp_avg_sq.<name>`)
    /// per parameter and the I64 scalar `step`, once a step has run.
    public func stateTensors(parameterNames: [String]) -> [String: SafeTensor] {
        guard let expAvg, let expAvgSq else { return [:] }
        var result = expAvg.tensors(kind: "exp_avg", parameters: parameters, names: parameterNames)
        result.merge(expAvgSq.tensors(kind: "exp_avg_sq", parameters: parameters, names: parameterNames)) { a, _ in a }
        if let maxExpAvgSq {
            result.merge(maxExpAvgSq.tensors(kind: "max_exp_avg_sq", parameters: parameters, names: parameterNames)) { a, _ in a }
        }
        result["step"] = try? SafeTensor(int64s: [stepCount], shape: [])
        return result
    }

    /// Restores the moments and the step count; no `step` entry means
    /// "before the first step".
    public func loadStateTensors(_ tensors: [String: SafeTensor], parameterNames: [String], path: String) throws {
        guard tensors["step"] != nil else {
            expAvg = nil; expAvgSq = nil; maxExpAvgSq = nil; stepCount = 0
            return
        }
        let count = try _readStateCounter("step", from: tensors, path: path)
        let kinds = ["exp_avg", "exp_avg_sq"] + (amsgrad ? ["max_exp_avg_sq"] : [])
        let values = try _readStateBuffers(kinds: kinds, from: tensors, parameters: parameters, names: parameterNames, path: path)
        let buffers = kinds.map { kind in
            let b = _ParameterBuffers(like: parameters)
            for (index, v) in values[kind]!.enumerated() { b.pointers[index].update(from: v, count: v.count) }
            return b
        }
        expAvg = buffers[0]; expAvgSq = buffers[1]; maxExpAvgSq = amsgrad ? buffers[2] : nil
        stepCount = count
    }
}
