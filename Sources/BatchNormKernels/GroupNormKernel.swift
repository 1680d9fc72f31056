import CBatchNormKitIntrinsics
import KernelSupport

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
        // `_Affine` only along rows (L = 1): along runs its specialization ran
        // the GroupNorm forward slower than `_OptionalAffine`, for reasons not
        // found (figures: Benchmarks/README.md, "A/B on Zen 4")
        if let gamma, let beta, shape.l == 1 {
            _forwardBlocks(input, shape: shape, samples: samples, affine: _Affine(gamma: gamma, beta: beta), eps: eps,
                           output: output, shift: shift, meanOffset: meanOffset, invStd: invStd, relu: relu, streaming: streaming)
        } else {
            _forwardBlocks(input, shape: shape, samples: samples, affine: _OptionalAffine(gamma: gamma, beta: beta), eps: eps,
                           output: output, shift: shift, meanOffset: meanOffset, invStd: invStd, relu: relu, streaming: streaming)
        }
    }

    /// ``_forwardSamples(_:shape:samples:gamma:beta:eps:output:shift:meanOffset:invStd:relu:streaming:)``
    /// with γ, β read through `affine`.
    @inlinable
    static func _forwardBlocks<A: _AffineParameters>(
        _ input: UnsafePointer<Float>, shape: GroupNormShape, samples: Range<Int>, affine: A, eps: Float,
        output: UnsafeMutablePointer<Float>,
        shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>,
        invStd: UnsafeMutablePointer<Double>, relu: Bool, streaming: Bool
    ) {
        let m = shape.valuesPerRow
        defer { if streaming { bnk_stream_fence() } }
        // Short rows go in blocks of up to 8 rows: pass 1 of every row of the block
        // two rows at a time (independent accumulator chains), the raw sums
        // parked in meanOffset/invStd; then every row's statistics (the √ and
        // divisions of different rows overlap instead of each row waiting on
        // its own); then pass 2, two rows at a time. A block stays within half
        // the L1d between its passes, so longer rows make shorter blocks.
        // Only for a cache-resident batch (``BatchNormKernel/cacheResidentBytes``,
        // as BatchNorm's row groups): from memory, two rows read side by side
        // stall on their loads (perf; Benchmarks/README.md, "A/B on Zen 4"),
        // while one row at a time is one sequential stream.
        let float = MemoryLayout<Float>.size
        let resident = 2 * shape.elementCount * float <= _residentBytes()
        let block = resident ? max(1, min(8, _rowBlockBytes / max(1, m * float))) : 1
        var row = samples.lowerBound * shape.groups
        let end = samples.upperBound * shape.groups
        @inline(__always) func terms(_ r: Int) -> _GroupNormalizeTerms<A> {
            _normalizeTerms(input, shape: shape, row: r, affine: affine, output: output,
                            shift: shift, meanOffset: meanOffset, invStd: invStd)
        }
        while row < end {
            let blockEnd = min(end, row + block)
            var r = row
            while r < blockEnd {
                let pair = r + 2 <= blockEnd
                let sums = pair ? _shiftedSums(input + r * m, input + (r + 1) * m, count: m, rows: 2)
                                : _shiftedSums(input + r * m, input + r * m, count: m, rows: 1)
                (meanOffset[r], invStd[r]) = sums.0
                if pair { (meanOffset[r + 1], invStd[r + 1]) = sums.1 }
                r += pair ? 2 : 1
            }
            for r in row..<blockEnd {
                _rowStatistics(input + r * m, row: r, sums: (meanOffset[r], invStd[r]), count: m, eps: eps,
                               shift: shift, meanOffset: meanOffset, invStd: invStd)
            }
            r = row
            while r < blockEnd {
                let pair = r + 2 <= blockEnd
                if relu {
                    _elementwiseRowPair(_ReLUClampedTerms(terms(r)), _ReLUClampedTerms(terms(pair ? r + 1 : r)),
                                     rows: pair ? 2 : 1, shape: shape, streaming: streaming)
                } else {
                    _elementwiseRowPair(terms(r), terms(pair ? r + 1 : r), rows: pair ? 2 : 1, shape: shape, streaming: streaming)
                }
                r += pair ? 2 : 1
            }
            row = blockEnd
        }
    }

    /// A row's statistics from its shifted sums into `shift`, `meanOffset`,
    /// `invStd` at `row` (in Double when the Float32 sums overflowed).
    @inlinable @inline(__always)
    static func _rowStatistics(
        _ x: UnsafePointer<Float>, row: Int, sums: (sum: Double, sumSquares: Double), count m: Int, eps: Float,
        shift: UnsafeMutablePointer<Float>, meanOffset: UnsafeMutablePointer<Double>, invStd: UnsafeMutablePointer<Double>
    ) {
        let s = x[0]
        var offset = sums.sum / Double(m)
        var variance = max(0, sums.sumSquares - sums.sum * offset) / Double(m)
        if !(sums.sum + sums.sumSquares).isFinite {
            (offset, variance) = _rowStatisticsInDouble(x, count: m, shift: s)
        }
        shift[row] = s
        meanOffset[row] = offset
        invStd[row] = 1 / (variance + Double(eps)).squareRoot()
    }

    /// Pass 2's terms of `row` from its statistics.
    @inlinable @inline(__always)
    static func _normalizeTerms<A: _AffineParameters>(
        _ input: UnsafePointer<Float>, shape: GroupNormShape, row: Int, affine: A, output: UnsafeMutablePointer<Float>,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>
    ) -> _GroupNormalizeTerms<A> {
        let m = shape.valuesPerRow, firstChannel = shape.groups == 1 ? 0 : (row % shape.groups) * shape.channelsPerGroup
        return _GroupNormalizeTerms(x: input + row * m, affine: affine.advanced(by: firstChannel),
                                    output: output + row * m, shift: shift[row], meanOffset: meanOffset[row], invStd: invStd[row])
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
        defer { if streaming { bnk_stream_fence() } }
        @inline(__always) func rows<A: _AffineParameters>(_ affine: A) {
            var row = samples.lowerBound * shape.groups
            let end = samples.upperBound * shape.groups
            @inline(__always) func terms(_ row: Int) -> _GroupNormalizeTerms<A> {
                _normalizeTerms(input, shape: shape, row: row, affine: affine, output: output,
                                shift: shift, meanOffset: meanOffset, invStd: invStd)
            }
            while row + 2 <= end { _elementwiseRowPair(terms(row), terms(row + 1), rows: 2, shape: shape, streaming: streaming); row += 2 }
            if row < end { _elementwiseRowPair(terms(row), terms(row), rows: 1, shape: shape, streaming: streaming) }
        }
        if let gamma, let beta { rows(_Affine(gamma: gamma, beta: beta)) } else { rows(_OptionalAffine(gamma: gamma, beta: beta)) }
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

    /// Σd and Σd² over `count` values of one row (`rows` 1) or of two
    /// (`rows` 2, a constant after inlining), d = x − shift with shift = the
    /// row's first value: Float32 partial sums of at most 64 values per lane
    /// (two chains per row), folded into Double. The second result is the
    /// first's when `rows` is 1.
    @inlinable @inline(__always)
    static func _shiftedSums(_ x: UnsafePointer<Float>, _ x1: UnsafePointer<Float>, count m: Int, rows: Int)
        -> ((sum: Double, sumSquares: Double), (sum: Double, sumSquares: Double)) {
        let k = _Vector(repeating: x[0]), k1 = _Vector(repeating: x1[0])
        let vectorEnd = m - m % _lanes
        var sum = 0.0, sumSquares = 0.0, sum1 = 0.0, sumSquares1 = 0.0
        var i = 0
        while i < vectorEnd {
            let blockEnd = min(vectorEnd, i + _rowsPerBlock * _lanes)
            var a1 = _Vector(), a2 = _Vector(), b1 = _Vector(), b2 = _Vector()
            var c1 = _Vector(), c2 = _Vector(), e1 = _Vector(), e2 = _Vector()
            while i + 2 * _lanes <= blockEnd {
                let d0 = _load(x + i) - k, d1 = _load(x + i + _lanes) - k
                a1 += d0; a2 = _mulAdd(d0, d0, a2)
                b1 += d1; b2 = _mulAdd(d1, d1, b2)
                if rows == 2 {
                    let f0 = _load(x1 + i) - k1, f1 = _load(x1 + i + _lanes) - k1
                    c1 += f0; c2 = _mulAdd(f0, f0, c2)
                    e1 += f1; e2 = _mulAdd(f1, f1, e2)
                }
                i &+= 2 &* _lanes
            }
            if i < blockEnd {
                let d = _load(x + i) - k
                a1 += d; a2 = _mulAdd(d, d, a2)
                if rows == 2 { let f = _load(x1 + i) - k1; c1 += f; c2 = _mulAdd(f, f, c2) }
                i &+= _lanes
            }
            sum += _sumLanes(a1 + b1); sumSquares += _sumLanes(a2 + b2)
            if rows == 2 { sum1 += _sumLanes(c1 + e1); sumSquares1 += _sumLanes(c2 + e2) }
        }
        while i < m {
            let d = Double(x[i] - x[0])
            sum += d; sumSquares += d * d
            if rows == 2 { let f = Double(x1[i] - x1[0]); sum1 += f; sumSquares1 += f * f }
            i += 1
        }
        if rows != 2 { (sum1, sumSquares1) = (sum, sumSquares) }
        return ((sum, sumSquares), (sum1, sumSquares1))
    }

    /// Pass 2 of one row (`rows` 1: `t0`) or of two (`t1` too), `rows` a
    /// constant after inlining. With L = 1 and normal stores the two rows'
    /// vectors interleave; otherwise each row goes through ``_elementwiseRow(_:channels:l:streaming:)``.
    @inlinable @inline(__always)
    static func _elementwiseRowPair<T: _ElementwiseTerms>(_ t0: T, _ t1: T, rows: Int, shape: GroupNormShape, streaming: Bool) {
        let k = shape.channelsPerGroup
        guard shape.l == 1 && !streaming && rows == 2 else {
            _elementwiseRow(t0, channels: k, l: shape.l, streaming: streaming)
            if rows == 2 { _elementwiseRow(t1, channels: k, l: shape.l, streaming: streaming) }
            return
        }
        let vectorEnd = k - k % _lanes
        var j = 0
        while j < vectorEnd {
            _store(t0.vector(t0.constants(column: j), at: j), t0.output + j)
            _store(t1.vector(t1.constants(column: j), at: j), t1.output + j)
            j &+= _lanes
        }
        while j < k {
            t0.output[j] = t0.scalar(feature: j, at: j)
            t1.output[j] = t1.scalar(feature: j, at: j)
            j &+= 1
        }
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

/// Bytes of rows GroupNorm's forward takes through its two passes as one
/// block: half the L1 data cache, so the block is still there for pass 2.
@usableFromInline let _rowBlockBytes = MachineCaches.current.l1d / 2
