// Inference without BatchNorm for the CNN: an eval-mode BatchNorm2d is a
// fixed affine map per channel, y = x·s + t with s = γ/√(running_var + ε) and
// t = β − running_mean·s, so after a convolution (y = W∗x + b) it folds in:
//
//     W'[o] = s[o]·W[o]   (every tap of output channel o),   b'[o] = (b[o] − μ[o])·s[o] + β[o]
//
// and the classifier's BatchNorm1d folds into its Linear the same way (see
// `Inference/FoldedNetwork.swift`). Computed in Double, rounded once to Float.

extension Conv2d {
    /// The weight `(out, in/groups, k, k)` and bias `[out]` of this
    /// convolution with the eval-mode `norm` after it folded in, in Double.
    func _folded(with norm: _NormAffine) -> (weight: [Double], bias: [Double]) {
        let taps = weight.value.count / outChannels
        var w = weight.value.scalars.map(Double.init)
        var b = bias?.value.scalars.map(Double.init) ?? [Double](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            for i in (o * taps)..<((o + 1) * taps) { w[i] *= norm.scale[o] }
            b[o] = b[o] * norm.scale[o] + norm.shift[o]
        }
        return (w, b)
    }
}

extension CNN {
    /// An inference copy of this network with every BatchNorm folded into
    /// the convolution or Linear before it: the same architecture with
    /// `batchNorm: false` (state names `features.0`, `features.3`,
    /// `classifier.0`, `classifier.2`), in eval mode, sharing no storage.
    /// Its logits equal this network's eval-mode logits up to Float32 rounding.
    ///
    /// - Throws: `invalidArgument` for a BatchNorm without running statistics,
    ///   or a GroupNorm/InstanceNorm network (nothing fixed to fold).
    public func foldingBatchNorm() throws -> CNN {
        guard architecture.normalization == .batchNorm || architecture.normalization == .none else {
            throw BatchNormKitError.invalidArgument(
                name: "normalization", value: architecture.normalizationDescription,
                requirement: "only BatchNorm folds (GroupNorm and InstanceNorm use each sample's own statistics)")
        }
        var plain = architecture
        plain.normalization = .none
        let result = try CNN(plain)
        let source = features.layers + classifier.layers
        var values: [(weight: [Double], bias: [Double])] = []
        for (index, layer) in source.enumerated() {
            let norm = try (index + 1 < source.count ? source[index + 1] as? _BatchNorm : nil).map { try _NormAffine($0, index: index + 1) }
            if let conv = layer as? Conv2d {
                values.append(norm.map { conv._folded(with: $0) }
                              ?? (conv.weight.value.scalars.map(Double.init), conv.bias?.value.scalars.map(Double.init) ?? []))
            } else if let linear = layer as? Linear {
                var matrix = _AffineMatrix(linear)
                if let norm { matrix.scaleRows(by: norm) }
                values.append((matrix.weight, matrix.bias))
            }
        }
        let targets = (result.features.layers + result.classifier.layers).compactMap { layer -> (Parameter, Parameter?)? in
            if let conv = layer as? Conv2d { return (conv.weight, conv.bias) }
            if let linear = layer as? Linear { return (linear.weight, linear.bias) }
            return nil
        }
        precondition(targets.count == values.count, "folded CNN has the same convolutions and Linears")
        for ((weight, bias), value) in zip(targets, values) {
            weight.value.withUnsafeMutableBufferPointer { w in for i in w.indices { w[i] = Float(value.weight[i]) } }
            bias?.value.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] = Float(value.bias[i]) } }
        }
        result.eval()
        return result
    }
}
