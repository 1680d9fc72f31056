import CBatchNormKitIntrinsics
import KernelSupport

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
        _reducePairs(_GradTerms.self, _PairArrays(x: input, dy: gradOutput, shift: shift, scale: shift, bias: shift, sum1: sumGrad,
                                                  sum2: sumGradShifted, scratch: scratch), shape: shape)
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
        _elementwise(_GradInputTerms(dy: gradOutput, x: input, shift: shift, gradScale: gradScale,
                                     inputScale: inputScale, constant: constant, output: gradInput),
                     shape: shape, parallel: _ElementwisePass.gradInput)
    }
}

/// dx = gradScale·dy + inputScale·(x − shift) + constant.
@usableFromInline struct _GradInputTerms: _ElementwiseTerms {
    @usableFromInline let dy, x, shift, gradScale, inputScale, constant: UnsafePointer<Float>
    @usableFromInline let output: UnsafeMutablePointer<Float>

    @inlinable init(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                    gradScale: UnsafePointer<Float>, inputScale: UnsafePointer<Float>,
                    constant: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        self.dy = dy; self.x = x; self.shift = shift; self.gradScale = gradScale
        self.inputScale = inputScale; self.constant = constant; self.output = output
    }

    /// dy, x, and the output.
    @inlinable static var streams: Int { 3 }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector, _Vector, _Vector) {
        (_load(shift + j), _load(gradScale + j), _load(inputScale + j), _load(constant + j))
    }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector, _Vector, _Vector) {
        (_Vector(repeating: shift[f]), _Vector(repeating: gradScale[f]),
         _Vector(repeating: inputScale[f]), _Vector(repeating: constant[f]))
    }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector, _Vector, _Vector), at o: Int) -> _Vector {
        _mulAdd(_load(dy + o), k.1, _mulAdd(_load(x + o) - k.0, k.2, k.3))
    }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        _mulAdd(dy[o], gradScale[f], _mulAdd(x[o] - shift[f], inputScale[f], constant[f]))
    }
}
