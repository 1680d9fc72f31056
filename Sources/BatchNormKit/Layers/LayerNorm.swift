import BatchNormKernels

/// Layer normalization, `torch.nn.LayerNorm` (Ba, Kiros & Hinton, 2016,
/// arXiv:1607.06450): each sample is normalized over its last
/// `normalizedShape.count` axes, with γ and β of that shape (per element).
///
///     y = (x − E[x]) / √(Var[x] + ε) · γ + β     (E, Var over the last axes)
///
/// - Input `(*, normalizedShape…)`; output the same. `LayerNorm(normalizedShape: [256])`
///   on `(N, 256)` normalizes each row; on `(N, T, 256)` each of the N·T vectors.
/// - Same in train and eval mode: no batch statistics, no running buffers.
/// - Parameters `weight` γ (1) and `bias` β (0), shape `normalizedShape`.
public final class LayerNorm: _GroupNormalization {
    /// The trailing shape normalized over.
    public let normalizedShape: [Int]
    /// Whether γ (and β, unless `bias: false`) are learned (default true).
    public let elementwiseAffine: Bool

    /// - Parameters:
    ///   - normalizedShape: the input's last axes, each ≥ 1, e.g. `[256]`.
    ///   - eps: added to the variance; must be > 0. Default 1e-5.
    ///   - elementwiseAffine: learn γ and β. Default true.
    ///   - bias: learn β too (with `elementwiseAffine`). Default true.
    public init(normalizedShape: [Int], eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) throws {
        guard !normalizedShape.isEmpty, normalizedShape.allSatisfy({ $0 > 0 }) else {
            throw BatchNormKitError.invalidArgument(name: "normalizedShape", value: "\(normalizedShape)",
                                                    requirement: "must be one or more sizes, each ≥ 1")
        }
        _ = try Tensor.elementCount(of: normalizedShape)   // throws on overflow
        self.normalizedShape = normalizedShape
        self.elementwiseAffine = elementwiseAffine
        try super.init(parameterShape: normalizedShape, eps: eps, weight: elementwiseAffine,
                       bias: elementwiseAffine && bias)
    }

    override var context: String { "LayerNorm(\(normalizedShape))" }

    /// Every leading index is one statistics row of D = ∏normalizedShape values.
    override func layout(of x: Tensor) throws -> GroupNormShape {
        let k = normalizedShape.count
        guard x.shape.count >= k, Array(x.shape.suffix(k)) == normalizedShape else {
            throw BatchNormKitError.shapeMismatch(context: context, expected: "(*, \(normalizedShape.map(String.init).joined(separator: ", ")))", got: x.shape)
        }
        guard x.count > 0 else { throw BatchNormKitError.emptyBatch(context: context) }
        return GroupNormShape(n: x.count / channelCount, c: channelCount, groups: 1)
    }
}
