import CBatchNormKitIntrinsics

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
        let parts = _threadParts(shape), streaming = _streams(values: shape.elementCount)
        if parts > 1 {
            _normalizeParallel(input, shape: shape, streaming: streaming, shift: shift, scale: scale, bias: bias,
                               output: output, parts: parts)
        } else {
            _normalizeSamples(input, shape: shape, samples: 0..<shape.n, streaming: streaming,
                              shift: shift, scale: scale, bias: bias, output: output)
        }
    }

    /// Samples `samples` of the batch (all of it, or one thread's share):
    /// rows for `(N, C)`, runs for `(N, C, L)`.
    @inlinable
    static func _normalizeSamples(
        _ input: UnsafePointer<Float>, shape: BatchNormShape, samples: Range<Int>, streaming: Bool,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        if shape.l == 1 {
            _normalizeRows(input, rows: samples, batchRows: shape.n, c: shape.c, streaming: streaming,
                           shift: shift, scale: scale, bias: bias, output: output)
        } else {
            _normalizeRuns(input, samples: samples, c: shape.c, l: shape.l, streaming: streaming,
                           shift: shift, scale: scale, bias: bias, output: output)
        }
    }

    /// `(N, C)`, rows `rows` of a batch of `batchRows`: up to four rows per
    /// load of the per-feature constants (``_rowGroup(c:rows:streams:maximum:)``
    /// picks how many).
    @inlinable
    static func _normalizeRows(
        _ input: UnsafePointer<Float>, rows: Range<Int>, batchRows: Int, c: Int, streaming: Bool,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        if streaming {
            // one row at a time: each row aligns its streaming stores on its own
            for row in rows {
                let x = input + row * c
                _streamSpan(output + row * c, count: c,
                            vector: { j in _mulAdd(_load(x + j) - _load(shift + j), _load(scale + j), _load(bias + j)) },
                            scalar: { j in (x[j] - shift[j]) * scale[j] + bias[j] })
            }
            bnk_stream_fence()
            return
        }
        var row = rows.lowerBound
        switch _rowGroup(c: c, rows: batchRows, streams: 2, maximum: 4) {
        case 4:
            while row + 4 <= rows.upperBound {
                _normalizeGroup(input + row * c, c: c, rows: 4, shift: shift, scale: scale, bias: bias, output: output + row * c)
                row += 4
            }
        case 2:
            while row + 2 <= rows.upperBound {
                _normalizeGroup(input + row * c, c: c, rows: 2, shift: shift, scale: scale, bias: bias, output: output + row * c)
                row += 2
            }
        default:
            break
        }
        while row < rows.upperBound {
            _normalizeGroup(input + row * c, c: c, rows: 1, shift: shift, scale: scale, bias: bias, output: output + row * c)
            row += 1
        }
    }

    /// `rows` consecutive rows (a constant after inlining) with one load of
    /// the constants per vector of features.
    @inlinable @inline(__always)
    static func _normalizeGroup(
        _ x: UnsafePointer<Float>, c: Int, rows: Int,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        output y: UnsafeMutablePointer<Float>
    ) {
        let vectorEnd = c - c % _lanes
        var j = 0
        while j < vectorEnd {
            let k = _load(shift + j), a = _load(scale + j), b = _load(bias + j)
            for r in 0..<rows {
                _store(_mulAdd(_load(x + r * c + j) - k, a, b), y + r * c + j)
            }
            j += _lanes
        }
        while j < c {
            for r in 0..<rows { y[r * c + j] = (x[r * c + j] - shift[j]) * scale[j] + bias[j] }
            j += 1
        }
    }

    /// `(N, C, L)`, L > 1, samples `samples`: each feature's run of L values.
    @inlinable
    static func _normalizeRuns(
        _ input: UnsafePointer<Float>, samples: Range<Int>, c: Int, l: Int, streaming: Bool,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        for sample in samples {
            for feature in 0..<c {
                let run = (sample * c + feature) * l
                let x = input + run, y = output + run
                let k = _Vector(repeating: shift[feature])
                let a = _Vector(repeating: scale[feature]), b = _Vector(repeating: bias[feature])
                if streaming {
                    let k1 = shift[feature], a1 = scale[feature], b1 = bias[feature]
                    _streamSpan(y, count: l, vector: { i in _mulAdd(_load(x + i) - k, a, b) },
                                scalar: { i in (x[i] - k1) * a1 + b1 })
                    continue
                }
                var i = 0
                while i + 2 * _lanes <= l {
                    let v0 = _load(x + i), v1 = _load(x + i + _lanes)
                    _store(_mulAdd(v0 - k, a, b), y + i)
                    _store(_mulAdd(v1 - k, a, b), y + i + _lanes)
                    i += 2 * _lanes
                }
                while i + _lanes <= l { _store(_mulAdd(_load(x + i) - k, a, b), y + i); i += _lanes }
                while i < l { y[i] = (x[i] - shift[feature]) * scale[feature] + bias[feature]; i += 1 }
            }
        }
        if streaming { bnk_stream_fence() }
    }
}
