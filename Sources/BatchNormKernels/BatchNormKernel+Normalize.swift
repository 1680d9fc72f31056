import CBatchNormKitIntrinsics
import KernelSupport

// MARK: - Normalize + affine (training-mode pass 2, and the whole eval forward)

extension BatchNormKernel {
    /// y = (x − shift)·scale + bias, per feature, in one read and one write.
    ///
    /// The caller folds normalization and affine into per-feature constants:
    /// train: shift = moments.shift, scale = γ/√(var + ε),
    ///        bias = β − (mean − shift)·scale;
    /// eval:  shift = running_mean, scale = γ/√(running_var + ε), bias = β.
    /// Subtracting a shift near the mean first keeps large-mean features exact.
    ///
    /// - input, output: `(N, C, L)` (may be the same buffer);
    ///   shift, scale, bias: `[C]`.
    @inlinable
    public static func normalizeAffine(
        _ input: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        _elementwise(_NormalizeTerms(x: input, shift: shift, scale: scale, bias: bias, output: output), shape: shape,
                     parallel: _ElementwisePass.normalize)
    }
}

/// y = (x − shift)·scale + bias.
@usableFromInline struct _NormalizeTerms: _ElementwiseTerms {
    @usableFromInline let x, shift, scale, bias: UnsafePointer<Float>
    @usableFromInline let output: UnsafeMutablePointer<Float>

    @inlinable init(x: UnsafePointer<Float>, shift: UnsafePointer<Float>, scale: UnsafePointer<Float>,
                    bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        self.x = x; self.shift = shift; self.scale = scale; self.bias = bias; self.output = output
    }

    @inlinable static var streams: Int { 2 }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector, _Vector) { (_load(shift + j), _load(scale + j), _load(bias + j)) }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector, _Vector) {
        (_Vector(repeating: shift[f]), _Vector(repeating: scale[f]), _Vector(repeating: bias[f]))
    }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector, _Vector), at o: Int) -> _Vector { _mulAdd(_load(x + o) - k.0, k.1, k.2) }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float { _mulAdd(x[o] - shift[f], scale[f], bias[f]) }
}
