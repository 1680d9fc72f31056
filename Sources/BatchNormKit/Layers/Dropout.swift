/// Dropout and alpha dropout, the shared implementation: in training mode each
/// element is kept with probability 1 − p and the result is an affine map of
/// the kept input, y = x·scaleᵢ + shiftᵢ, with the per-element scale kept for
/// backward (dx = dy·scaleᵢ). Evaluation mode is the identity.
///
/// The seed lesson's advice stands: "We rarely use ANY Dropout in tandem with
/// BatchNorm" — dropout shifts the statistics BatchNorm gathers in training
/// away from those it sees in evaluation; AlphaDropout keeps mean and variance.
///
/// Masks come from the layer's own SplitMix64 stream (`seed`), so a run is
/// reproducible; they are not PyTorch's random numbers.
public class _Dropout: Layer {
    /// Probability of dropping an element, in [0, 1].
    public let p: Float
    public private(set) var isTraining = true

    /// Kept-element scale and the two output shifts (dropped, kept).
    let keptScale: Float, droppedShift: Float, keptShift: Float
    var generator: SplitMix64
    /// What the last forward returned (its input, in eval mode): backward's shape check.
    var output: Tensor?
    var trainingOutput: Tensor?   // the layer's own buffer
    var gradInput: Tensor?
    /// Per element: keptScale or 0, from the last training-mode forward.
    var scale: Tensor?
    var lastWasTraining = false

    init(p: Float, seed: UInt64, name: String, scales: (kept: Float, droppedShift: Float, keptShift: Float)) throws {
        guard p >= 0, p <= 1 else {
            throw BatchNormKitError.invalidArgument(name: "\(name) p", value: "\(p)", requirement: "must be in [0, 1]")
        }
        self.p = p
        (keptScale, droppedShift, keptShift) = scales
        generator = SplitMix64(seed: seed)
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    // MARK: - Forward / backward pair

    /// y: x itself in eval mode or with p = 0 (as PyTorch returns its input);
    /// zeros with p = 1; else x·scaleᵢ + shiftᵢ with a fresh mask.
    public func forward(_ x: Tensor) throws -> Tensor {
        lastWasTraining = isTraining && p > 0
        guard lastWasTraining else { output = x; return x }
        let y = trainingOutput._reuse(sameShapeAs: x)
        output = y
        let s = scale._reuse(sameShapeAs: x)
        let src = x._pointer, dst = y._pointer, mask = s._pointer, n = x.count
        if p == 1 {
            mask.update(repeating: 0, count: n)
            dst.update(repeating: 0, count: n)
            return y
        }
        // keep when u ≥ p for u uniform in [0, 1) on a 2⁻²⁴ grid: two draws per 64 random bits
        let threshold = UInt32((Double(p) * 16_777_216).rounded(.up))
        var i = 0
        while i < n {
            let bits = generator.next()
            for draw in 0..<2 where i < n {
                let keep = UInt32(truncatingIfNeeded: bits >> (40 - 24 * UInt64(draw))) & 0xFF_FFFF >= threshold
                mask[i] = keep ? keptScale : 0
                dst[i] = keep ? src[i] * keptScale + keptShift : droppedShift
                i += 1
            }
        }
        return y
    }

    /// dx = dy·scaleᵢ with the mask of the last forward (dy in eval mode).
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: "\(type(of: self))(p: \(p))")
        guard needsInputGradient else { return nil }
        guard lastWasTraining, let scale else { return dy }
        let dx = gradInput._reuse(sameShapeAs: dy)
        let g = dy._pointer, m = scale._pointer, d = dx._pointer
        for i in 0..<dy.count { d[i] = g[i] * m[i] }
        return dx
    }
}

// MARK: - The layers

/// Dropout, `torch.nn.Dropout` (Srivastava et al., 2014, JMLR 15): in training
/// mode zeroes each element with probability p and scales the rest by
/// 1/(1 − p), so E[y] = x; identity in eval mode. Any shape.
public final class Dropout: _Dropout {
    /// - Parameters:
    ///   - p: drop probability in [0, 1]. Default 0.5.
    ///   - seed: the mask stream's seed. Default 0.
    public init(p: Float = 0.5, seed: UInt64 = 0) throws {
        try super.init(p: p, seed: seed, name: "Dropout",
                       scales: (kept: p < 1 ? 1 / (1 - p) : 0, droppedShift: 0, keptShift: 0))
    }
}

/// Alpha dropout, `torch.nn.AlphaDropout` (Klambauer et al., 2017,
/// arXiv:1706.02515), for SELU networks: dropped elements are set to SELU's
/// negative saturation α' = −λα ≈ −1.7581, then y = a·(kept or α') + b with
/// a = ((1 − p)(1 + p·α'²))^(−1/2), b = −a·p·α', which keeps zero mean and
/// unit variance. Identity in eval mode. Any shape.
public final class AlphaDropout: _Dropout {
    /// λα of SELU, as PyTorch's alpha_dropout uses it.
    public static let seluSaturation: Float = 1.7580993408473766

    /// - Parameters:
    ///   - p: drop probability in [0, 1]. Default 0.5.
    ///   - seed: the mask stream's seed. Default 0.
    public init(p: Float = 0.5, seed: UInt64 = 0) throws {
        let alpha = Double(Self.seluSaturation), q = 1 - Double(p)
        let a = p < 1 ? 1 / ((alpha * alpha * Double(p) + 1) * q).squareRoot() : 0
        // kept: a·x + a·α·p;  dropped: a·(−α) + a·α·p = a·α·(p − 1)
        try super.init(p: p, seed: seed, name: "AlphaDropout",
                       scales: (kept: Float(a), droppedShift: Float(a * alpha * (Double(p) - 1)),
                                keptShift: Float(a * alpha * Double(p))))
    }
}
