import CBatchNormKitIntrinsics

// MARK: - Fused normalize + affine + ReLU (BatchNorm → ReLU forward)
//
// The ReLU rides on the normalize pass: the clamp costs a compare and a
// blend per vector in registers, while a separate ReLU pass would read and
// write the whole batch once more.

extension BatchNormKernel {
    /// y = max(0, (x − shift)·scale + bias), per feature, in one read and one write.
    ///
    /// The constants are those of
    /// ``normalizeAffine(_:shape:shift:scale:bias:output:)`` (train or eval).
    /// Negative pre-activations become +0; NaN stays NaN and −0 stays −0, as
    /// `torch.relu` does.
    ///
    /// - input, output: `(N, C, L)` (may be the same buffer);
    ///   shift, scale, bias: `[C]`.
    @inlinable
    public static func normalizeAffineReLU(
        _ input: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        _elementwise(_ReLUClampedTerms(_NormalizeTerms(x: input, shift: shift, scale: scale, bias: bias, output: output)),
                     shape: shape, parallel: _ElementwisePass.normalizeReLU)
    }
}

/// Any elementwise terms with their output clamped to max(0, ·): BatchNorm's
/// normalize terms in ``BatchNormKernel/normalizeAffineReLU(_:shape:shift:scale:bias:output:)``,
/// GroupNorm's row terms in `GroupNormKernel.forwardReLU`. A blend on `< 0`,
/// not a max, so NaN stays NaN (max(0, NaN) would depend on operand order).
@usableFromInline struct _ReLUClampedTerms<Base: _ElementwiseTerms>: _ElementwiseTerms {
    @usableFromInline let base: Base

    @inlinable init(_ base: Base) { self.base = base }

    @inlinable static var streams: Int { Base.streams }
    @inlinable var output: UnsafeMutablePointer<Float> { base.output }
    @inlinable @inline(__always)
    func constants(column j: Int) -> Base.Constants { base.constants(column: j) }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> Base.Constants { base.constants(feature: f) }
    @inlinable @inline(__always)
    func vector(_ k: Base.Constants, at o: Int) -> _Vector {
        let v = base.vector(k, at: o)
        return v.replacing(with: 0, where: v .< 0)
    }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        let v = base.scalar(feature: f, at: o)
        return v < 0 ? 0 : v
    }
}

// MARK: - Backward through ReLU → BatchNorm
//
// ReLU's gradient is dy·[y > 0] with y the fused forward's output (PyTorch's
// threshold_backward: 0 where y is 0 or NaN). The mask is applied where dy is
// read — inside the reduction and inside the dx pass — so the masked
// gradient is never written: y is one more array read by each pass instead
// of a ReLU pass reading dy and y and writing a masked dy. With dyᵣ = dy·[y > 0]
// the BatchNorm backward is unchanged:
//   dx = gradScale·dyᵣ + inputScale·(x − shift) + constant.

extension BatchNormKernel {
    /// Σdyᵣ and Σdyᵣ·(x − shift) per feature, dyᵣ = dy·[y > 0], in one read
    /// of dy, y and x.
    ///
    /// - gradOutput (the gradient at the ReLU's output), output (the fused
    ///   forward's y), input: `(N, C, L)`; shift: `[C]`;
    ///   sumGrad, sumGradShifted: `[C]` (overwritten); scratch: `[2·C]`.
    @inlinable
    public static func backwardReduceReLU(
        gradOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: BatchNormShape, shift: UnsafePointer<Float>,
        sumGrad: UnsafeMutablePointer<Double>, sumGradShifted: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        _reducePairs(_GradReLUTerms.self, _PairArrays(x: input, dy: gradOutput, mask: output, shift: shift, sum1: sumGrad,
                                                      sum2: sumGradShifted, scratch: scratch), shape: shape)
    }

    /// dx = gradScale·dyᵣ + inputScale·(x − shift) + constant, dyᵣ = dy·[y > 0],
    /// with the constants of
    /// ``backwardInput(gradOutput:input:shape:shift:gradScale:inputScale:constant:gradInput:)``
    /// computed from ``backwardReduceReLU(gradOutput:output:input:shape:shift:sumGrad:sumGradShifted:scratch:)``'s sums.
    ///
    /// - gradOutput, output, input, gradInput: `(N, C, L)`;
    ///   shift, gradScale, inputScale, constant: `[C]`.
    @inlinable
    public static func backwardInputReLU(
        gradOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: BatchNormShape, shift: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
        inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput: UnsafeMutablePointer<Float>
    ) {
        _elementwise(_GradInputTerms(_ReLUMasked.self, dy: gradOutput, y: output, x: input, shift: shift,
                                     gradScale: gradScale, inputScale: inputScale, constant: constant,
                                     output: gradInput),
                     shape: shape, parallel: _ElementwisePass.gradInputReLU)
    }
}

/// dy·[y > 0], as vectors and scalars (NaN or ≤ 0 in y: 0). The select
/// form, for the reductions; the dx passes use ``_reluMaskedBits(_:_:)``.
@inlinable @inline(__always)
func _reluMasked(_ dy: _Vector, _ y: _Vector) -> _Vector { dy.replacing(with: 0, where: .!(y .> 0)) }

/// ``_reluMasked(_:_:)`` (the same bits) as an AND of dy's bits with a mask
/// computed in integer lanes from y's bits, for the dx passes. A select of a
/// loaded dy becomes a zero-masking load, which cannot start before y's load
/// and compare are done; from memory that chain made the masked dx pass 1.6×
/// slower on Zen 5, while in the reductions the AND's extra work cost more
/// than it saved (Benchmarks/README.md, "Measurements behind the kernels").
/// y > 0 and not NaN ⇔ its bits b, as Int32, satisfy 1 ≤ b ≤ 0x7F80_0000
/// (+∞): with t = b − 1, t and 0x7F7F_FFFF − t are both ≥ 0 exactly then,
/// so the sign of their OR, spread over the lane, is the mask's complement.
@inlinable @inline(__always)
func _reluMaskedBits(_ dy: _Vector, _ y: _Vector) -> _Vector {
    let t = unsafeBitCast(y, to: SIMD8<Int32>.self) &- 1
    let keep = ~((t | (0x7F7F_FFFF &- t)) &>> 31)
    return unsafeBitCast(unsafeBitCast(dy, to: SIMD8<Int32>.self) & keep, to: _Vector.self)
}

@inlinable @inline(__always)
func _reluMasked(_ dy: Float, _ y: Float) -> Float { y > 0 ? dy : 0 }

@inlinable @inline(__always)
func _reluMasked(_ dy: _Wide, _ y: _Wide) -> _Wide { dy.replacing(with: 0, where: .!(y .> 0)) }

/// Σdyᵣ and Σdyᵣ·d, dyᵣ = dy·[y > 0] (`mask` is y).
@usableFromInline enum _GradReLUTerms: _PairTerms {
    @inlinable static var streams: Int { 3 }
    @inlinable static var kind: _PairKind { .gradReLU }
    @inlinable @inline(__always)
    static func accumulate(d: _Vector, dy: _Vector, mask: _Vector, _ s1: inout _Vector, _ s2: inout _Vector) {
        _GradTerms.accumulate(d: d, dy: _reluMasked(dy, mask), mask: mask, &s1, &s2)
    }
    @inlinable @inline(__always)
    static func accumulate(d: _Wide, dy: _Wide, mask: _Wide, _ s1: inout _Wide, _ s2: inout _Wide) {
        _GradTerms.accumulate(d: d, dy: _reluMasked(dy, mask), mask: mask, &s1, &s2)
    }
    @inlinable @inline(__always)
    static func terms(d: Float, dy: Float, mask: Float) -> (Float, Float) {
        _GradTerms.terms(d: d, dy: _reluMasked(dy, mask), mask: mask)
    }
}
