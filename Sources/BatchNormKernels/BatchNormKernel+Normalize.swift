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
        let n = shape.n, c = shape.c, l = shape.l
        if l == 1 {
            let vectorEnd = c - c % _lanes
            for row in 0..<n {
                let x = input + row * c, y = output + row * c
                var j = 0
                while j < vectorEnd {
                    _store(_mulAdd(_load(x + j) - _load(shift + j), _load(scale + j), _load(bias + j)), y + j)
                    j += _lanes
                }
                while j < c { y[j] = (x[j] - shift[j]) * scale[j] + bias[j]; j += 1 }
            }
        } else {
            for sample in 0..<n {
                for feature in 0..<c {
                    let run = (sample * c + feature) * l
                    let x = input + run, y = output + run
                    let k = _Vector(repeating: shift[feature])
                    let a = _Vector(repeating: scale[feature]), b = _Vector(repeating: bias[feature])
                    var i = 0
                    while i + _lanes <= l { _store(_mulAdd(_load(x + i) - k, a, b), y + i); i += _lanes }
                    while i < l { y[i] = (x[i] - shift[feature]) * scale[feature] + bias[feature]; i += 1 }
                }
            }
        }
    }
}
