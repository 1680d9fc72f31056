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
        _elementwise(_NormalizeReLUTerms(x: input, shift: shift, scale: scale, bias: bias, output: output),
                     shape: shape, parallel: _normalizeReLUParallel)
    }

    @usableFromInline
    static func _normalizeReLUParallel(_ terms: _NormalizeReLUTerms, shape: BatchNormShape, streaming: Bool, parts: Int) {
        var job = _ElementwiseJob(terms: terms, shape: shape, streaming: streaming, parts: parts)
        _runElementwise(&job, parts: parts) { raw, part in
            raw.assumingMemoryBound(to: _ElementwiseJob<_NormalizeReLUTerms>.self).pointee.run(part: part)
        }
    }
}

/// y = max(0, (x − shift)·scale + bias): the normalize terms, clamped.
@usableFromInline struct _NormalizeReLUTerms: _ElementwiseTerms {
    @usableFromInline let affine: _NormalizeTerms

    @inlinable init(x: UnsafePointer<Float>, shift: UnsafePointer<Float>, scale: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        affine = _NormalizeTerms(x: x, shift: shift, scale: scale, bias: bias, output: output)
    }

    @inlinable static var streams: Int { _NormalizeTerms.streams }
    @inlinable var output: UnsafeMutablePointer<Float> { affine.output }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector, _Vector) { affine.constants(column: j) }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector, _Vector) { affine.constants(feature: f) }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector, _Vector), at o: Int) -> _Vector {
        // a blend on `< 0`, not a max: keeps NaN (max(0, NaN) would depend on operand order)
        let v = affine.vector(k, at: o)
        return v.replacing(with: 0, where: v .< 0)
    }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        let v = affine.scalar(feature: f, at: o)
        return v < 0 ? 0 : v
    }
}
