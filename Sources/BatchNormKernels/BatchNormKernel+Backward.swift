import CBatchNormKitIntrinsics

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
        let parts = _threadParts(shape), streaming = _streams(values: shape.elementCount)
        if parts > 1 {
            _backwardInputParallel(gradOutput: gradOutput, input: input, shape: shape, streaming: streaming, shift: shift,
                                   gradScale: gradScale, inputScale: inputScale, constant: constant,
                                   gradInput: gradInput, parts: parts)
        } else {
            _backwardInputSamples(gradOutput: gradOutput, input: input, shape: shape, samples: 0..<shape.n,
                                  streaming: streaming, shift: shift,
                                  gradScale: gradScale, inputScale: inputScale, constant: constant, gradInput: gradInput)
        }
    }

    /// Samples `samples` of the batch (all of it, or one thread's share):
    /// rows for `(N, C)`, runs for `(N, C, L)`.
    @inlinable
    static func _backwardInputSamples(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: BatchNormShape, samples: Range<Int>,
        streaming: Bool, shift: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
        inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput: UnsafeMutablePointer<Float>
    ) {
        if shape.l == 1 {
            _backwardInputRows(gradOutput: gradOutput, input: input, rows: samples, batchRows: shape.n, c: shape.c,
                               streaming: streaming, shift: shift,
                               gradScale: gradScale, inputScale: inputScale, constant: constant, gradInput: gradInput)
        } else {
            _backwardInputRuns(gradOutput: gradOutput, input: input, samples: samples, c: shape.c, l: shape.l,
                               streaming: streaming, shift: shift,
                               gradScale: gradScale, inputScale: inputScale, constant: constant, gradInput: gradInput)
        }
    }

    /// `(N, C)`, rows `rows` of a batch of `batchRows`: up to four rows per
    /// load of the per-feature constants (``_rowGroup(c:rows:streams:maximum:)``
    /// picks how many).
    @inlinable
    static func _backwardInputRows(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, rows: Range<Int>, batchRows: Int, c: Int,
        streaming: Bool, shift: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
        inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput: UnsafeMutablePointer<Float>
    ) {
        if streaming {
            // one row at a time: each row aligns its streaming stores on its own
            for row in rows {
                let dy = gradOutput + row * c, x = input + row * c
                _streamSpan(gradInput + row * c, count: c,
                            vector: { j in _mulAdd(_load(dy + j), _load(gradScale + j),
                                                   _mulAdd(_load(x + j) - _load(shift + j), _load(inputScale + j), _load(constant + j))) },
                            scalar: { j in dy[j] * gradScale[j] + ((x[j] - shift[j]) * inputScale[j] + constant[j]) })
            }
            bnk_stream_fence()
            return
        }
        var row = rows.lowerBound
        @inline(__always) func group(_ r: Int, _ count: Int) {
            _backwardInputGroup(gradOutput: gradOutput + r * c, input: input + r * c, c: c, rows: count, shift: shift,
                                gradScale: gradScale, inputScale: inputScale, constant: constant,
                                gradInput: gradInput + r * c)
        }
        switch _rowGroup(c: c, rows: batchRows, streams: 3, maximum: 4) {
        case 4:
            while row + 4 <= rows.upperBound { group(row, 4); row += 4 }
        case 2:
            while row + 2 <= rows.upperBound { group(row, 2); row += 2 }
        default:
            break
        }
        while row < rows.upperBound { group(row, 1); row += 1 }
    }

    /// `rows` consecutive rows (a constant after inlining).
    @inlinable @inline(__always)
    static func _backwardInputGroup(
        gradOutput dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, c: Int, rows: Int,
        shift: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
        inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput dx: UnsafeMutablePointer<Float>
    ) {
        let vectorEnd = c - c % _lanes
        var j = 0
        while j < vectorEnd {
            let k = _load(shift + j), g = _load(gradScale + j)
            let a = _load(inputScale + j), b = _load(constant + j)
            for r in 0..<rows {
                let o = r * c + j
                _store(_mulAdd(_load(dy + o), g, _mulAdd(_load(x + o) - k, a, b)), dx + o)
            }
            j += _lanes
        }
        while j < c {
            for r in 0..<rows {
                let o = r * c + j
                dx[o] = dy[o] * gradScale[j] + ((x[o] - shift[j]) * inputScale[j] + constant[j])
            }
            j += 1
        }
    }

    /// `(N, C, L)`, L > 1, samples `samples`.
    @inlinable
    static func _backwardInputRuns(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, samples: Range<Int>, c: Int, l: Int,
        streaming: Bool, shift: UnsafePointer<Float>, gradScale: UnsafePointer<Float>,
        inputScale: UnsafePointer<Float>, constant: UnsafePointer<Float>,
        gradInput: UnsafeMutablePointer<Float>
    ) {
        for sample in samples {
            for feature in 0..<c {
                let run = (sample * c + feature) * l
                let dy = gradOutput + run, x = input + run, dx = gradInput + run
                let k = _Vector(repeating: shift[feature]), g = _Vector(repeating: gradScale[feature])
                let a = _Vector(repeating: inputScale[feature]), b = _Vector(repeating: constant[feature])
                if streaming {
                    let k1 = shift[feature], g1 = gradScale[feature], a1 = inputScale[feature], b1 = constant[feature]
                    _streamSpan(dx, count: l, vector: { i in _mulAdd(_load(dy + i), g, _mulAdd(_load(x + i) - k, a, b)) },
                                scalar: { i in dy[i] * g1 + ((x[i] - k1) * a1 + b1) })
                    continue
                }
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
        if streaming { bnk_stream_fence() }
    }
}
