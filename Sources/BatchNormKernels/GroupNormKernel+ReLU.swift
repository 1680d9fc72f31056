import CBatchNormKitIntrinsics
import KernelSupport

// MARK: - Fused GroupNorm / LayerNorm → ReLU
//
// As BatchNormKernel+ReLU.swift: the clamp rides on pass 2 of the forward,
// and the backward reads dy·[y > 0] (y: the fused forward's output) in its
// reduction and in its dx pass, so neither direction makes a ReLU pass over
// memory. The drivers are GroupNormKernel's own, with the clamp
// (`_ReLUClampedTerms`) or the mask (`_ReLUMasked`) as a type parameter.

extension GroupNormKernel {
    /// max(0, y) with y as
    /// ``forward(_:shape:gamma:beta:eps:output:shift:meanOffset:invStd:)``
    /// computes it, and the same row statistics: GroupNorm (LayerNorm) → ReLU
    /// in one write. Negative values become +0; NaN and −0 stay, as
    /// `torch.relu`.
    @inlinable
    public static func forwardReLU(
        _ input: UnsafePointer<Float>, shape: GroupNormShape,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        output: UnsafeMutablePointer<Float>,
        shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>,
        invStd: UnsafeMutablePointer<Double>
    ) {
        _forward(input, shape: shape, gamma: gamma, beta: beta, eps: eps, output: output,
                 shift: shift, meanOffset: meanOffset, invStd: invStd, relu: true)
    }

    /// ``backward(gradOutput:input:shape:gamma:shift:meanOffset:invStd:gradInput:gammaGrad:betaGrad:totals:blockSums:fixedStatistics:)``
    /// of dyᵣ = dy·[y > 0], masked where dy is read (no masked copy).
    ///
    /// - gradOutput: the gradient at the ReLU's output; output: y from
    ///   ``forwardReLU(_:shape:gamma:beta:eps:output:shift:meanOffset:invStd:)``;
    ///   both `(N, C, L)`. The rest as `backward`.
    @inlinable
    public static func backwardReLU(
        gradOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: GroupNormShape, gamma: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        gradInput: UnsafeMutablePointer<Float>?,
        gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?,
        totals: UnsafeMutablePointer<Double>, blockSums block: UnsafeMutablePointer<Float>,
        fixedStatistics: Bool = false
    ) {
        _backward(gradOutput: gradOutput, output: output, relu: true, input: input, shape: shape,
                  gamma: gamma, shift: shift, meanOffset: meanOffset, invStd: invStd, gradInput: gradInput,
                  gammaGrad: gammaGrad, betaGrad: betaGrad, totals: totals, blockSums: block,
                  fixedStatistics: fixedStatistics)
    }
}

/// How a backward reads dy at `o`: as it is, or masked by y.
@usableFromInline protocol _GradientMask {
    /// Arrays read for dy (1, or 2 with y).
    static var reads: Int { get }
    static func vector(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, at o: Int) -> _Vector
    static func scalar(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, at o: Int) -> Float
}

/// dy itself (y is not read).
@usableFromInline enum _Unmasked: _GradientMask {
    @inlinable static var reads: Int { 1 }
    @inlinable @inline(__always)
    static func vector(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, at o: Int) -> _Vector { _load(dy + o) }
    @inlinable @inline(__always)
    static func scalar(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, at o: Int) -> Float { dy[o] }
}

/// dy·[y > 0]: ReLU's backward (0 where y is 0, −0 or NaN).
@usableFromInline enum _ReLUMasked: _GradientMask {
    @inlinable static var reads: Int { 2 }
    @inlinable @inline(__always)
    static func vector(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, at o: Int) -> _Vector {
        _reluMaskedBits(_load(dy + o), _load(y + o))
    }
    @inlinable @inline(__always)
    static func scalar(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, at o: Int) -> Float {
        _reluMasked(dy[o], y[o])
    }
}
