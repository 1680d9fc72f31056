import CBatchNormKitIntrinsics

/// The fast per-sample normalization kernels behind LayerNorm and GroupNorm
/// (Ba et al., 2016, arXiv:1607.06450; Wu & He, 2018, arXiv:1803.08494):
/// statistics per (sample, group) instead of per feature, so a sample's
/// output never depends on the rest of its batch and there are no running
/// buffers. Layout and the three uses: ``GroupNormShape``.
///
/// Every statistics row (sample n, group g) is K·L contiguous values, so the
/// kernels work row by row with SIMD along the row: two reads and one write
/// per forward, two reads of dy and x and one write of dx per backward; a row
/// of a few thousand values stays in L1/L2 between its passes.
///
/// Naive twins: `GroupNormReference.forward`, `.normalize`, `.backward`,
/// `.forwardReLU`, `.backwardReLU` (the fused GroupNorm → ReLU forms).
public enum GroupNormKernel {}

// MARK: - Forward

extension GroupNormKernel {
    /// Per-row statistics, then y = (x − μ)/√(σ² + ε)·γ + β.
    ///
    /// Like ``BatchNormKernel/moments(_:shape:into:)`` the sums are of
    /// d = x − shift, shift = the row's first value, so a row with mean 1e4
    /// and std 0.1 keeps its digits: μ = shift + meanOffset,
    /// meanOffset = Σd/M, σ² = (Σd² − (Σd)²/M)/M (biased, as PyTorch), M = K·L.
    ///
    /// - input, output: `(N, C, L)`, may be the same buffer.
    /// - gamma, beta: `[C]`, or nil for γ = 1, β = 0 (a layer without affine).
    /// - shift: `[N·G]`; meanOffset, invStd: `[N·G]`, all overwritten: what
    ///   ``backward(gradOutput:input:shape:gamma:shift:meanOffset:invStd:gradInput:gammaGrad:betaGrad:totals:blockSums:)`` needs.
    @inlinable
    public static func forward(
        _ input: UnsafePointer<Float>, shape: GroupNormShape,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        output: UnsafeMutablePointer<Float>,
        shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>,
        invStd: UnsafeMutablePointer<Double>
    ) {
        _forward(input, shape: shape, gamma: gamma, beta: beta, eps: eps, output: output,
                 shift: shift, meanOffset: meanOffset, invStd: invStd, relu: false)
    }

    /// ``forward(_:shape:gamma:beta:eps:output:shift:meanOffset:invStd:)``,
    /// its pass 2 clamped to max(0, ·) when `relu`.
    @usableFromInline
    static func _forward(
        _ input: UnsafePointer<Float>, shape: GroupNormShape,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        output: UnsafeMutablePointer<Float>,
        shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>,
        invStd: UnsafeMutablePointer<Double>, relu: Bool
    ) {
        var job = _GroupNormJob(relu ? .forwardReLU : .forward, shape: shape, input: input, gamma: gamma, shift: shift,
                                meanOffset: meanOffset, invStd: invStd)
        (job.beta, job.eps, job.output) = (beta, eps, output)
        job.runSplit()
    }

    /// ``forward(_:shape:gamma:beta:eps:output:shift:meanOffset:invStd:)`` on the rows of
    /// `samples` (the batch, or one thread's share), clamped when `relu`;
    /// fences its own streaming stores.
    @inlinable
    static func _forwardSamples(
        _ input: UnsafePointer<Float>, shape: GroupNormShape, samples: Range<Int>,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, eps: Float,
        output: UnsafeMutablePointer<Float>,
        shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>,
        invStd: UnsafeMutablePointer<Double>, relu: Bool, streaming: Bool
    ) {
        let m = shape.valuesPerRow, k = shape.channelsPerGroup
        defer { if streaming { bnk_stream_fence() } }
        for row in (samples.lowerBound * shape.groups)..<(samples.upperBound * shape.groups) {
            let x = input + row * m, y = output + row * m
            let firstChannel = (row % shape.groups) * k
            // pass 1: shifted sums → mean offset and 1/σ
            let s = x[0]
            let sums = _shiftedSums(x, count: m, shift: s)
            var offset = sums.sum / Double(m)
            var variance = max(0, sums.sumSquares - sums.sum * offset) / Double(m)
            if !(sums.sum + sums.sumSquares).isFinite {
                (offset, variance) = _rowStatisticsInDouble(x, count: m, shift: s)
            }
            shift[row] = s
            meanOffset[row] = offset
            invStd[row] = 1 / (variance + Double(eps)).squareRoot()
            // pass 2: y = (x − shift)·a + b per channel, a = γ/σ, b = β − offset·a (or max(0, y))
            let terms = _GroupNormalizeTerms(x: x, gamma: gamma.map { $0 + firstChannel }, beta: beta.map { $0 + firstChannel },
                                             output: y, shift: s, meanOffset: Float(offset), invStd: Float(invStd[row]))
            if relu {
                _elementwiseRow(_ReLUClampedTerms(terms), channels: k, l: shape.l, streaming: streaming)
            } else {
                _elementwiseRow(terms, channels: k, l: shape.l, streaming: streaming)
            }
        }
    }

    /// y = (x − μ)·invStd·γ + β with statistics given per row instead of
    /// measured (μ = shift + meanOffset): pass 2 of ``forward(_:shape:gamma:beta:eps:output:shift:meanOffset:invStd:)``
    /// alone. InstanceNorm's evaluation mode uses it with the running
    /// statistics (shift = running mean, meanOffset = 0).
    ///
    /// - input, output: `(N, C, L)`; gamma, beta: `[C]` or nil (1, 0);
    ///   shift, meanOffset, invStd: `[N·G]`.
    @inlinable
    public static func normalize(
        _ input: UnsafePointer<Float>, shape: GroupNormShape,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        output: UnsafeMutablePointer<Float>
    ) {
        _normalize(input, shape: shape, gamma: gamma, beta: beta, shift: shift, meanOffset: meanOffset, invStd: invStd,
                   output: output)
    }

    @usableFromInline
    static func _normalize(
        _ input: UnsafePointer<Float>, shape: GroupNormShape,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        output: UnsafeMutablePointer<Float>
    ) {
        var job = _GroupNormJob(.normalize, shape: shape, input: input, gamma: gamma, shift: UnsafeMutablePointer(mutating: shift),
                                meanOffset: UnsafeMutablePointer(mutating: meanOffset), invStd: UnsafeMutablePointer(mutating: invStd))
        (job.beta, job.output) = (beta, output)
        job.runSplit()
    }

    /// ``normalize(_:shape:gamma:beta:shift:meanOffset:invStd:output:)`` on the rows of
    /// `samples`; fences its own streaming stores.
    @inlinable
    static func _normalizeSamples(
        _ input: UnsafePointer<Float>, shape: GroupNormShape, samples: Range<Int>,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        output: UnsafeMutablePointer<Float>, streaming: Bool
    ) {
        let m = shape.valuesPerRow, k = shape.channelsPerGroup
        defer { if streaming { bnk_stream_fence() } }
        for row in (samples.lowerBound * shape.groups)..<(samples.upperBound * shape.groups) {
            let firstChannel = (row % shape.groups) * k
            _elementwiseRow(_GroupNormalizeTerms(x: input + row * m, gamma: gamma.map { $0 + firstChannel }, beta: beta.map { $0 + firstChannel },
                                                 output: output + row * m, shift: shift[row],
                                                 meanOffset: Float(meanOffset[row]), invStd: Float(invStd[row])),
                            channels: k, l: shape.l, streaming: streaming)
        }
    }

    /// A row whose Float32 sums overflowed (|x − shift| ≳ 1.8e19), in Double,
    /// two-pass: (μ − shift, Σ(x − μ)²/M). Finite for any finite input.
    @usableFromInline @inline(never)
    static func _rowStatisticsInDouble(_ x: UnsafePointer<Float>, count m: Int, shift: Float)
        -> (meanOffset: Double, variance: Double) {
        var sum = 0.0
        for i in 0..<m { sum += Double(x[i]) }
        let mean = sum / Double(m)
        var squares = 0.0
        for i in 0..<m { let d = Double(x[i]) - mean; squares += d * d }
        return (mean - Double(shift), squares / Double(m))
    }

    /// Σd and Σd² over `count` values, d = x − shift: Float32 partial sums of
    /// at most 64 values per lane (two chains), folded into Double.
    @inlinable @inline(__always)
    static func _shiftedSums(_ x: UnsafePointer<Float>, count m: Int, shift: Float) -> (sum: Double, sumSquares: Double) {
        let k = _Vector(repeating: shift)
        let vectorEnd = m - m % _lanes
        var sum = 0.0, sumSquares = 0.0
        var i = 0
        while i < vectorEnd {
            let blockEnd = min(vectorEnd, i + _rowsPerBlock * _lanes)
            var a1 = _Vector(), a2 = _Vector(), b1 = _Vector(), b2 = _Vector()
            while i + 2 * _lanes <= blockEnd {
                let d0 = _load(x + i) - k, d1 = _load(x + i + _lanes) - k
                a1 += d0; a2 = _mulAdd(d0, d0, a2)
                b1 += d1; b2 = _mulAdd(d1, d1, b2)
                i += 2 * _lanes
            }
            if i < blockEnd {
                let d = _load(x + i) - k
                a1 += d; a2 = _mulAdd(d, d, a2)
                i += _lanes
            }
            sum += _sumLanes(a1 + b1); sumSquares += _sumLanes(a2 + b2)
        }
        while i < m {
            let d = Double(x[i] - shift)
            sum += d; sumSquares += d * d
            i += 1
        }
        return (sum, sumSquares)
    }

    /// One row (sample, group) of pass 2 on the elementwise driver: across
    /// its channels when L = 1, along each channel's run otherwise.
    /// `streaming`: non-temporal stores (the caller fences).
    @inlinable @inline(__always)
    static func _elementwiseRow<T: _ElementwiseTerms>(_ terms: T, channels: Int, l: Int, streaming: Bool) {
        if l == 1 && !(streaming && channels >= 64) {
            // one row, normal stores: the group loop itself (no row-grouping choice per row)
            BatchNormKernel._elementwiseGroup(terms, first: 0, c: channels, rows: 1)
        } else if l == 1 {
            BatchNormKernel._elementwiseRows(terms, rows: 0..<1, batchRows: 1, c: channels, streaming: streaming)
        } else {
            BatchNormKernel._elementwiseRuns(terms, samples: 0..<1, c: channels, l: l, streaming: streaming)
        }
    }
}

/// One row of GroupNorm's pass 2: y = (x − shift)·a + b per channel, with
/// a = invStd·γ, b = β − meanOffset·a (pointers at the row's first value
/// and first channel).
@usableFromInline struct _GroupNormalizeTerms: _ElementwiseTerms {
    @usableFromInline let x: UnsafePointer<Float>
    @usableFromInline let gamma, beta: UnsafePointer<Float>?
    @usableFromInline let output: UnsafeMutablePointer<Float>
    @usableFromInline let shift, meanOffset, invStd: Float

    @inlinable init(x: UnsafePointer<Float>, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                    output: UnsafeMutablePointer<Float>, shift: Float, meanOffset: Float, invStd: Float) {
        self.x = x; self.gamma = gamma; self.beta = beta; self.output = output
        self.shift = shift; self.meanOffset = meanOffset; self.invStd = invStd
    }

    @inlinable static var streams: Int { 2 }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector, _Vector) {
        let a = _Vector(repeating: invStd) * _load(gamma, j, orIdentity: 1)
        return (_Vector(repeating: shift), a, _load(beta, j, orIdentity: 0) - _Vector(repeating: meanOffset) * a)
    }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector, _Vector) {
        let a = invStd * (gamma?[f] ?? 1)
        return (_Vector(repeating: shift), _Vector(repeating: a), _Vector(repeating: (beta?[f] ?? 0) - meanOffset * a))
    }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector, _Vector), at o: Int) -> _Vector { _mulAdd(_load(x + o) - k.0, k.1, k.2) }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        let a = invStd * (gamma?[f] ?? 1)
        return (x[o] - shift) * a + ((beta?[f] ?? 0) - meanOffset * a)
    }
}

/// The vector of γ (or β) at j, or `identity` in every lane when the layer
/// has none: the same arithmetic as a buffer of ones (zeros), to the bit.
@inlinable @inline(__always)
func _load(_ p: UnsafePointer<Float>?, _ j: Int, orIdentity identity: Float) -> _Vector {
    if let p { return _load(p + j) }
    return _Vector(repeating: identity)
}
