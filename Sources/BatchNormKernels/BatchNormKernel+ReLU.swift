import CBatchNormKitIntrinsics
import KernelSupport

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
// ReLU's gradient is dy·[y > 0] with y = max(0, p) the fused forward's
// output and p = (x − shift)·scale + bias its pre-activation (PyTorch's
// threshold_backward: 0 where y is 0 or NaN; y > 0 ⇔ p > 0). Both passes
// recompute p from x and the forward's constants — the forward's
// multiply-add on the same operands (``_mulAdd(_:_:_:)`` on vectors and
// scalars alike), so the same bits and the same mask — instead of reading
// y: they read dy and x, as the plain backward does, and the masked
// gradient is never written. With dyᵣ = dy·[p > 0] the BatchNorm backward
// is unchanged:
//   dx = gradScale·dyᵣ + inputScale·(x − shift) + constant.

extension BatchNormKernel {
    /// Σdyᵣ and Σdyᵣ·(x − shift) per feature, dyᵣ = dy·[(x − shift)·scale + bias > 0],
    /// in one read of dy and x.
    ///
    /// shift, scale and bias are the constants the fused forward
    /// ``normalizeAffineReLU(_:shape:shift:scale:bias:output:)`` used (its
    /// output, the ReLU's, is positive exactly where the mask passes dy).
    ///
    /// - gradOutput (the gradient at the ReLU's output), input: `(N, C, L)`;
    ///   shift, scale, bias: `[C]`; sumGrad, sumGradShifted: `[C]`
    ///   (overwritten); scratch: `[2·C]`.
    @inlinable
    public static func backwardReduceReLU(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        sumGrad: UnsafeMutablePointer<Double>, sumGradShifted: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        _reducePairs(_GradReLUTerms.self, _PairArrays(x: input, dy: gradOutput, shift: shift, scale: scale, bias: bias,
                                                      sum1: sumGrad, sum2: sumGradShifted, scratch: scratch),
                     shape: shape)
    }

    /// dx = gradScale·dyᵣ + inputScale·(x − shift) + constant,
    /// dyᵣ = dy·[(x − shift)·scale + bias > 0], in one read of dy and x:
    /// the constants of
    /// ``backwardInput(gradOutput:input:shape:shift:gradScale:inputScale:constant:gradInput:)``
    /// computed from ``backwardReduceReLU(gradOutput:input:shape:shift:scale:bias:sumGrad:sumGradShifted:scratch:)``'s
    /// sums, and the fused forward's shift, scale, bias.
    ///
    /// - gradOutput, input, gradInput: `(N, C, L)`;
    ///   shift, scale, bias, gradScale, inputScale, constant: `[C]`.
    @inlinable
    public static func backwardInputReLU(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        gradScale: UnsafePointer<Float>, inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput: UnsafeMutablePointer<Float>
    ) {
        _elementwise(_GradInputReLUTerms(dy: gradOutput, x: input, shift: shift, scale: scale, bias: bias,
                                         gradScale: gradScale, inputScale: inputScale, constant: constant,
                                         output: gradInput),
                     shape: shape, parallel: _ElementwisePass.gradInputReLU)
    }
}

/// dy·[y > 0], as vectors and scalars: 0 where y — or the pre-activation,
/// which has y's sign — is ≤ 0 or NaN. The select form; GroupNorm's dx pass
/// uses ``_reluMaskedBits(_:_:)``.
@inlinable @inline(__always)
func _reluMasked(_ dy: _Vector, _ y: _Vector) -> _Vector { dy.replacing(with: 0, where: .!(y .> 0)) }

/// ``_reluMasked(_:_:)`` (the same bits) as an AND of dy's bits with a mask
/// computed in integer lanes from y's bits, for GroupNorm's dx pass, which
/// loads y. A select of a loaded dy becomes a zero-masking load, which
/// cannot start before the mask is known; with the mask from a load of y
/// that chain slowed the masked dx pass, while in the reductions the AND's
/// extra work cost more than it saved. BatchNorm's
/// fused backward computes its mask from x and keeps the select: on a
/// computed pre-activation LLVM split this integer form into scalar lanes
/// (Benchmarks/README.md, "Measurements behind the kernels").
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

/// Σdyᵣ and Σdyᵣ·d, dyᵣ = dy·[d·scale + bias > 0].
@usableFromInline enum _GradReLUTerms: _PairTerms {
    @inlinable static var streams: Int { 2 }
    @inlinable static var leastRowGroup: Int { 2 }
    @inlinable static var kind: _PairKind { .gradReLU }
    @inlinable @inline(__always)
    static func accumulate(d: _Vector, dy: _Vector, scale: _Vector, bias: _Vector, _ s1: inout _Vector, _ s2: inout _Vector) {
        _GradTerms.accumulate(d: d, dy: _reluMasked(dy, _mulAdd(d, scale, bias)), scale: scale, bias: bias, &s1, &s2)
    }
    @inlinable @inline(__always)
    static func accumulate(d: _Wide, dy: _Wide, scale: _Wide, bias: _Wide, _ s1: inout _Wide, _ s2: inout _Wide) {
        _GradTerms.accumulate(d: d, dy: _reluMasked(dy, _mulAdd(d, scale, bias)), scale: scale, bias: bias, &s1, &s2)
    }
    @inlinable @inline(__always)
    static func terms(d: Float, dy: Float, scale: Float, bias: Float) -> (Float, Float) {
        _GradTerms.terms(d: d, dy: _reluMasked(dy, _mulAdd(d, scale, bias)), scale: scale, bias: bias)
    }
}

/// dx = gradScale·dyᵣ + inputScale·d + constant, d = x − shift,
/// dyᵣ = dy·[d·scale + bias > 0]: `_GradInputTerms` on the masked gradient,
/// the same arithmetic.
@usableFromInline struct _GradInputReLUTerms: _ElementwiseTerms {
    @usableFromInline let dy, x, shift, scale, bias, gradScale, inputScale, constant: UnsafePointer<Float>
    @usableFromInline let output: UnsafeMutablePointer<Float>

    @inlinable init(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                    scale: UnsafePointer<Float>, bias: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
                    inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        self.dy = dy; self.x = x; self.shift = shift; self.scale = scale; self.bias = bias
        self.gradScale = gradScale; self.inputScale = inputScale; self.constant = constant; self.output = output
    }

    /// dy, x, and the output.
    @inlinable static var streams: Int { 3 }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector, _Vector, _Vector, _Vector, _Vector) {
        (_load(shift + j), _load(scale + j), _load(bias + j),
         _load(gradScale + j), _load(inputScale + j), _load(constant + j))
    }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector, _Vector, _Vector, _Vector, _Vector) {
        (_Vector(repeating: shift[f]), _Vector(repeating: scale[f]), _Vector(repeating: bias[f]),
         _Vector(repeating: gradScale[f]), _Vector(repeating: inputScale[f]), _Vector(repeating: constant[f]))
    }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector, _Vector, _Vector, _Vector, _Vector), at o: Int) -> _Vector {
        let d = _load(x + o) - k.0
        return _mulAdd(_reluMasked(_load(dy + o), _mulAdd(d, k.1, k.2)), k.3, _mulAdd(d, k.4, k.5))
    }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        let d = x[o] - shift[f]
        return _mulAdd(_reluMasked(dy[o], _mulAdd(d, scale[f], bias[f])), gradScale[f], _mulAdd(d, inputScale[f], constant[f]))
    }
}
