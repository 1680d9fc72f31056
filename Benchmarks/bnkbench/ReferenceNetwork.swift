// The seed network as a naive twin: BatchNormReference's Double loops for
// every layer, cross-entropy and plain SGD. The baseline of the step and
// inference cases, and the oracle the smoke test checks them against.

import BatchNormKit
import BatchNormReference

struct ReferenceNetwork {
    enum Op {
        case linear(inFeatures: Int, outFeatures: Int, weight: [Double], bias: [Double])
        case batchNorm(features: Int, gamma: [Double], beta: [Double], eps: Double,
                       runningMean: [Double], runningVar: [Double])
        case relu
    }
    var ops: [Op]

    /// Copies the current parameters and buffers of a BatchNormKit network
    /// made of Linear, BatchNorm1d and ReLU layers.
    init(_ net: SeedNetwork) {
        func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }
        ops = net.layers.layers.map { layer in
            switch layer {
            case let l as Linear:
                return .linear(inFeatures: l.inFeatures, outFeatures: l.outFeatures,
                               weight: doubles(l.weight.value),
                               bias: l.bias.map { doubles($0.value) } ?? [Double](repeating: 0, count: l.outFeatures))
            case let b as BatchNorm1d:
                return .batchNorm(features: b.numFeatures,
                                  gamma: b.weight.map { doubles($0.value) } ?? [Double](repeating: 1, count: b.numFeatures),
                                  beta: b.bias.map { doubles($0.value) } ?? [Double](repeating: 0, count: b.numFeatures),
                                  eps: Double(b.eps),
                                  runningMean: b.runningMean.map(doubles) ?? [], runningVar: b.runningVar.map(doubles) ?? [])
            case is ReLU:
                return .relu
            default:
                fatalError("ReferenceNetwork: unsupported layer \(type(of: layer))")
            }
        }
    }

    /// Every parameter in `namedParameters()` order (weight, bias per layer),
    /// the order ``step(_:labels:n:learningRate:)`` returns gradients in.
    var parameters: [[Double]] {
        get {
            ops.flatMap { op -> [[Double]] in
                switch op {
                case let .linear(_, _, w, b): [w, b]
                case let .batchNorm(_, g, b, _, _, _): [g, b]
                case .relu: []
                }
            }
        }
        set {
            var k = 0
            for index in ops.indices {
                switch ops[index] {
                case let .linear(i, o, _, _):
                    ops[index] = .linear(inFeatures: i, outFeatures: o, weight: newValue[k], bias: newValue[k + 1]); k += 2
                case let .batchNorm(c, _, _, eps, rm, rv):
                    ops[index] = .batchNorm(features: c, gamma: newValue[k], beta: newValue[k + 1], eps: eps,
                                            runningMean: rm, runningVar: rv); k += 2
                case .relu: break
                }
            }
        }
    }

    /// Eval-mode logits `(n, classes)`.
    func inference(_ x: [Double], n: Int) -> [Double] {
        var a = x
        for op in ops {
            switch op {
            case let .linear(i, o, w, b):
                a = BatchNormReference.linearForward(a, n: n, inFeatures: i, weight: w, bias: b, outFeatures: o)
            case let .batchNorm(c, g, beta, eps, rm, rv):
                a = BatchNormReference.forwardEval(a, n: n, c: c, runningMean: rm, runningVar: rv, gamma: g, beta: beta, eps: eps)
            case .relu:
                a = BatchNormReference.relu(a)
            }
        }
        return a
    }

    /// One training step: batch-statistics forward, mean cross-entropy,
    /// backward, SGD `p ← p − lr·grad`. Returns the loss and every
    /// parameter's gradient in `namedParameters()` order (weight, bias per layer).
    mutating func step(_ x: [Double], labels: [Int], n: Int, learningRate lr: Double)
        -> (loss: Double, gradients: [[Double]])
    {
        var a = x
        var saved: [[Double]] = []
        for op in ops {
            switch op {
            case let .linear(i, o, w, b):
                saved.append(a)
                a = BatchNormReference.linearForward(a, n: n, inFeatures: i, weight: w, bias: b, outFeatures: o)
            case let .batchNorm(c, g, beta, eps, _, _):
                saved.append(a)
                a = BatchNormReference.forwardTrain(a, n: n, c: c, gamma: g, beta: beta, eps: eps)
            case .relu:
                a = BatchNormReference.relu(a)
                saved.append(a)
            }
        }
        guard case let .linear(_, classes, _, _) = ops.last! else { fatalError("last layer must be Linear") }
        let (loss, dLogits) = BatchNormReference.crossEntropy(logits: a, labels: labels, n: n, classes: classes)
        var g = dLogits
        var gradients: [[Double]] = []
        for index in ops.indices.reversed() {
            switch ops[index] {
            case let .linear(i, o, w, b):
                let r = BatchNormReference.linearBackward(gradOutput: g, x: saved[index], n: n, inFeatures: i,
                                                          weight: w, outFeatures: o)
                gradients = [r.weight, r.bias] + gradients
                ops[index] = .linear(inFeatures: i, outFeatures: o,
                                     weight: zip(w, r.weight).map { $0 - lr * $1 },
                                     bias: zip(b, r.bias).map { $0 - lr * $1 })
                g = r.input
            case let .batchNorm(c, gamma, beta, eps, rm, rv):
                let r = BatchNormReference.backwardTrain(gradOutput: g, input: saved[index], n: n, c: c, gamma: gamma, eps: eps)
                gradients = [r.gamma, r.beta] + gradients
                ops[index] = .batchNorm(features: c, gamma: zip(gamma, r.gamma).map { $0 - lr * $1 },
                                        beta: zip(beta, r.beta).map { $0 - lr * $1 }, eps: eps,
                                        runningMean: rm, runningVar: rv)
                g = r.input
            case .relu:
                let y = saved[index]
                g = g.indices.map { y[$0] > 0 ? g[$0] : 0 }
            }
        }
        return (loss, gradients)
    }
}
