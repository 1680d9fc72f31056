// MARK: - Backward
//
// With x̂ = (x − μ)·s, s = 1/√(σ² + ε), m = N·L and g = γ·s:
//   dβ = Σdy                dγ = Σdy·x̂
//   train: dx = g·(dy − Σdy/m − x̂·Σ(dy·x̂)/m)
//   eval:  dx = g·dy        (μ, σ² are constants: the running buffers)
// Both are dx = gradScale·dy + inputScale·(x − shift) + constant per feature,
// so one reduction pass and one elementwise pass serve both modes.

extension BatchNormKernel {
    /// Σdy and Σdy·(x − shift) per feature, in one read of dy and x.
    ///
    /// - gradOutput, input: `(N, C, L)`; shift: `[C]`;
    ///   sumGrad, sumGradShifted: `[C]` (overwritten); scratch: `[2·C]`.
    @inlinable
    public static func backwardReduce(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>,
        sumGrad: UnsafeMutablePointer<Double>, sumGradShifted: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        _reducePairs(_GradTerms.self, x: input, dy: gradOutput, shape: shape, shift: shift,
                     sum1: sumGrad, sum2: sumGradShifted, scratch: scratch)
    }

    /// dx = gradScale·dy + inputScale·(x − shift) + constant, per feature.
    ///
    /// - gradOutput, input, gradInput: `(N, C, L)`;
    ///   shift, gradScale, inputScale, constant: `[C]`.
    @inlinable
    public static func backwardInput(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
        inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput: UnsafeMutablePointer<Float>
    ) {
        let n = shape.n, c = shape.c, l = shape.l
        if l == 1 {
            let vectorEnd = c - c % _lanes
            for row in 0..<n {
                let dy = gradOutput + row * c, x = input + row * c, dx = gradInput + row * c
                var j = 0
                while j < vectorEnd {
                    let centred = _mulAdd(_load(x + j) - _load(shift + j), _load(inputScale + j), _load(constant + j))
                    _store(_mulAdd(_load(dy + j), _load(gradScale + j), centred), dx + j)
                    j += _lanes
                }
                while j < c {
                    dx[j] = dy[j] * gradScale[j] + ((x[j] - shift[j]) * inputScale[j] + constant[j])
                    j += 1
                }
            }
        } else {
            for sample in 0..<n {
                for feature in 0..<c {
                    let run = (sample * c + feature) * l
                    let dy = gradOutput + run, x = input + run, dx = gradInput + run
                    let k = _Vector(repeating: shift[feature]), g = _Vector(repeating: gradScale[feature])
                    let a = _Vector(repeating: inputScale[feature]), b = _Vector(repeating: constant[feature])
                    var i = 0
                    while i + _lanes <= l {
                        _store(_mulAdd(_load(dy + i), g, _mulAdd(_load(x + i) - k, a, b)), dx + i)
                        i += _lanes
                    }
                    while i < l {
                        dx[i] = dy[i] * gradScale[feature] + ((x[i] - shift[feature]) * inputScale[feature] + constant[feature])
                        i += 1
                    }
                }
            }
        }
    }
}
