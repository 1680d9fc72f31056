// Inference without BatchNorm: an eval-mode BatchNorm1d is a fixed affine
// map per feature, y = x·s + t with
//
//     s = γ / √(running_var + ε),   t = β − running_mean·s,
//
// so it can be folded into an adjacent Linear (y = W·x + b):
//
// - BatchNorm right after the Linear ("before" ReLU), fold backward:
//       W' = s·W (row o scaled by s[o]),   b' = (b − running_mean)·s + β
// - BatchNorm right before a Linear (placement "after": Linear → ReLU → BN →
//   Linear), fold forward into the NEXT Linear:
//       W' = W·diag(s) (column k scaled by s[k]),   b' = b + W·t
//
// Both are exact in real arithmetic; the new weights are computed in Double
// and rounded once to Float, so the folded network's logits match the
// unfolded eval-mode logits to float rounding (~1e-6).

// MARK: - Folding a Sequential

extension Sequential {
    /// An inference copy of this stack with every BatchNorm1d folded into an
    /// adjacent Linear: the previous layer when it is a Linear, otherwise the
    /// next one. The copy shares no storage with `self` and is in eval mode.
    ///
    /// Supported layers: Linear, BatchNorm1d, ReLU, Softmax, LogSoftmax.
    /// Folded Linears always get a bias (folding creates one).
    ///
    /// - Throws: `invalidArgument` for a BatchNorm1d without running
    ///   statistics, one with no Linear next to it, or an unsupported layer.
    public func foldingBatchNorm() throws -> Sequential {
        var items: [_FoldItem] = []
        for (index, layer) in layers.enumerated() {
            switch layer {
            case let linear as Linear: items.append(.linear(_AffineMatrix(linear)))
            case is ReLU: items.append(.relu)
            case is Softmax: items.append(.softmax)
            case is LogSoftmax: items.append(.logSoftmax)
            case let norm as _BatchNorm where !(norm is BatchNorm2d): items.append(.norm(try _NormAffine(norm, index: index)))
            default:
                throw BatchNormKitError.invalidArgument(name: "layer \(index)", value: "\(type(of: layer))",
                                                        requirement: "folding supports Linear, BatchNorm1d (or SyncBatchNorm), ReLU, Softmax and LogSoftmax only")
            }
        }
        // Fold each BatchNorm away; removing it lets a second BatchNorm
        // after the same Linear fold too.
        var i = 0
        while i < items.count {
            guard case let .norm(norm) = items[i] else { i += 1; continue }
            if i > 0, case var .linear(previous) = items[i - 1] {
                previous.scaleRows(by: norm)
                items[i - 1] = .linear(previous)
            } else if i + 1 < items.count, case var .linear(next) = items[i + 1] {
                next.absorbInput(norm)
                items[i + 1] = .linear(next)
            } else {
                throw BatchNormKitError.invalidArgument(name: "layer \(norm.index)", value: "BatchNorm1d",
                                                        requirement: "folding needs a Linear right before or right after it")
            }
            items.remove(at: i)
        }
        let folded = Sequential(try items.map { try $0.makeLayer() })
        folded.eval()
        return folded
    }
}

// MARK: - Folding the seed network

extension SeedNetwork {
    /// The folded inference network: the same widths without BatchNorm
    /// (Linear, ReLU, …, Linear; state names `layers.0.weight`,
    /// `layers.2.weight`, `layers.4.weight` for two hidden blocks), its
    /// Linears carrying the folded weights (see ``Sequential/foldingBatchNorm()``).
    /// Works for both placements; a network without BatchNorm is copied.
    /// The result is in eval mode and shares no storage with `self`.
    public func foldingBatchNorm() throws -> SeedNetwork {
        let folded = try layers.foldingBatchNorm()
        let arch = architecture
        let result = try SeedNetwork(inputSize: arch.inputSize, hiddenSizes: arch.hiddenSizes, classes: arch.classes,
                                     batchNorm: false)
        let source = Dictionary(uniqueKeysWithValues: folded.namedParameters(prefix: "layers.").map { ($0.name, $0.parameter) })
        for (name, parameter) in result.namedParameters() {
            guard let value = source[name]?.value else {
                preconditionFailure("folded seed network lacks \(name)")  // same widths, same layer kinds
            }
            try parameter.value.assign(from: value)
        }
        result.eval()
        return result
    }

    /// Folds the network and writes the result as a checkpoint (atomically).
    ///
    /// The file holds PyTorch names for the folded MLP (`layers.0.weight`
    /// `[h₁, in]`, `layers.0.bias`, `layers.2.weight` …) and metadata
    /// `norm=none`, `folded=true`, `folded_from=<norm>/<placement>`, plus
    /// `metadata`; ``SeedNetwork/init(checkpoint:)`` loads it back.
    ///
    /// - Returns: the folded network.
    @discardableResult
    public func exportFolded(to path: String, metadata: [String: String] = [:]) throws -> SeedNetwork {
        let folded = try foldingBatchNorm()
        var header = ["folded": "true",
                      "folded_from": useBatchNorm ? "batchnorm/\(placement.rawValue)" : "none"]
        header.merge(metadata) { _, given in given }
        try folded.saveCheckpoint(to: path, metadata: header)
        return folded
    }
}

// MARK: - Internals

/// A layer of the stack being folded.
enum _FoldItem {
    case linear(_AffineMatrix)
    case norm(_NormAffine)
    case relu, softmax, logSoftmax

    func makeLayer() throws -> Layer {
        switch self {
        case let .linear(matrix): return try matrix.makeLinear()
        case .relu: return ReLU()
        case .softmax: return Softmax()
        case .logSoftmax: return LogSoftmax()
        case .norm: preconditionFailure("BatchNorm left after folding")
        }
    }
}

/// An eval-mode BatchNorm1d as y = x·scale + shift, per feature, in Double.
struct _NormAffine {
    let index: Int
    var scale: [Double]
    var shift: [Double]

    init(_ norm: _BatchNorm, index: Int) throws {
        guard let mean = norm.runningMean?.scalars, let variance = norm.runningVar?.scalars else {
            throw BatchNormKitError.invalidArgument(
                name: "layer \(index)", value: "BatchNorm1d(trackRunningStats: false)",
                requirement: "folding needs running statistics (without them eval mode uses batch statistics)")
        }
        let gamma = norm.weight?.value.scalars ?? [Float](repeating: 1, count: norm.numFeatures)
        let beta = norm.bias?.value.scalars ?? [Float](repeating: 0, count: norm.numFeatures)
        let eps = Double(norm.eps)
        self.index = index
        let s = (0..<norm.numFeatures).map { Double(gamma[$0]) / (Double(variance[$0]) + eps).squareRoot() }
        scale = s
        shift = (0..<norm.numFeatures).map { Double(beta[$0]) - Double(mean[$0]) * s[$0] }
    }
}

/// A Linear's W `(out, in)` and b `[out]` in Double while folding.
struct _AffineMatrix {
    let inFeatures: Int
    let outFeatures: Int
    var weight: [Double]
    var bias: [Double]

    init(_ linear: Linear) {
        inFeatures = linear.inFeatures
        outFeatures = linear.outFeatures
        weight = linear.weight.value.scalars.map(Double.init)
        bias = linear.bias?.value.scalars.map(Double.init) ?? [Double](repeating: 0, count: linear.outFeatures)
    }

    /// BatchNorm after this layer: W' = diag(s)·W, b' = b·s + t.
    mutating func scaleRows(by norm: _NormAffine) {
        for o in 0..<outFeatures {
            let s = norm.scale[o]
            for k in 0..<inFeatures { weight[o * inFeatures + k] *= s }
            bias[o] = bias[o] * s + norm.shift[o]
        }
    }

    /// BatchNorm before this layer: W' = W·diag(s), b' = b + W·t.
    mutating func absorbInput(_ norm: _NormAffine) {
        for o in 0..<outFeatures {
            var offset = 0.0
            for k in 0..<inFeatures {
                offset += weight[o * inFeatures + k] * norm.shift[k]
                weight[o * inFeatures + k] *= norm.scale[k]
            }
            bias[o] += offset
        }
    }

    func makeLinear() throws -> Linear {
        var unused = SplitMix64(seed: 0)   // initial values are overwritten below
        let linear = try Linear(inFeatures: inFeatures, outFeatures: outFeatures, bias: true, generator: &unused)
        linear.weight.value.withUnsafeMutableBufferPointer { w in for i in w.indices { w[i] = Float(weight[i]) } }
        linear.bias!.value.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] = Float(bias[i]) } }
        return linear
    }
}
