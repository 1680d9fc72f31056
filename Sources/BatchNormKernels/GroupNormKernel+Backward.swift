import CBatchNormKitIntrinsics
import KernelSupport

// MARK: - Backward
//
// Per row (M = K·L values), with x̂ = (x − μ)·s, s = 1/√(σ² + ε), g = γ·dy:
//   dβ_c += Σdy,  dγ_c += Σdy·x̂   (over every row and position of channel c)
//   dx = s·(g − A/M − x̂·B/M),  A = Σg,  B = Σg·x̂   (over the row)
// With x̂ = s·(x − shift) − s·δ (δ = μ − shift) the second line is
//   dx = (s·γ)·dy + q·(x − shift) + w,  q = −s²·B/M,  w = s·(s·δ·B − A)/M,
// so each row takes one reduction pass and one elementwise pass. When the
// statistics are constants (InstanceNorm's running statistics in evaluation
// mode), μ and σ do not depend on x and dx = (s·γ)·dy: q = w = 0.

extension GroupNormKernel {
    /// dx, and dγ, dβ accumulated, from dy and the forward's row statistics.
    ///
    /// - gradOutput, input: `(N, C, L)`; gradInput: `(N, C, L)` or nil (skip dx).
    /// - gamma: `[C]`, or nil for γ = 1 (no affine); shift, meanOffset, invStd: `[N·G]`
    ///   from ``forward(_:shape:gamma:beta:eps:output:shift:meanOffset:invStd:)``.
    /// - gammaGrad, betaGrad: `[C]`, added to (`+=`), or nil to skip both.
    /// - totals: `[2·C]`, blockSums: `[2·C]`: workspace, overwritten.
    /// - fixedStatistics: the row statistics are constants (not functions
    ///   of x): dx = γ·invStd·dy.
    @inlinable
    public static func backward(
        gradOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, shape: GroupNormShape,
        gamma: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        gradInput: UnsafeMutablePointer<Float>?,
        gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?,
        totals: UnsafeMutablePointer<Double>, blockSums block: UnsafeMutablePointer<Float>,
        fixedStatistics: Bool = false
    ) {
        _backward(gradOutput: gradOutput, output: gradOutput, relu: false, input: input, shape: shape,
                  gamma: gamma, shift: shift, meanOffset: meanOffset, invStd: invStd, gradInput: gradInput,
                  gammaGrad: gammaGrad, betaGrad: betaGrad, totals: totals, blockSums: block,
                  fixedStatistics: fixedStatistics)
    }

    /// ``backward(gradOutput:input:shape:gamma:shift:meanOffset:invStd:gradInput:gammaGrad:betaGrad:totals:blockSums:fixedStatistics:)``
    /// with dy masked by [y > 0] when `relu` (y: `output`, unread otherwise).
    @usableFromInline
    static func _backward(
        gradOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, relu: Bool,
        input: UnsafePointer<Float>, shape: GroupNormShape, gamma: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        gradInput: UnsafeMutablePointer<Float>?,
        gammaGrad: UnsafeMutablePointer<Float>?, betaGrad: UnsafeMutablePointer<Float>?,
        totals: UnsafeMutablePointer<Double>, blockSums block: UnsafeMutablePointer<Float>, fixedStatistics: Bool
    ) {
        let c = shape.c
        var job = _GroupNormJob(relu ? .backwardReLU : .backward, shape: shape, input: input, gamma: gamma,
                                shift: UnsafeMutablePointer(mutating: shift), meanOffset: UnsafeMutablePointer(mutating: meanOffset),
                                invStd: UnsafeMutablePointer(mutating: invStd))
        (job.gradOutput, job.maskedBy, job.gradInput) = (gradOutput, output, gradInput)
        (job.wantsParams, job.totals, job.blockSums) = (gammaGrad != nil && betaGrad != nil, totals, block)
        job.fixedStatistics = fixedStatistics
        // each extra part: Double totals [2C], then Float32 block sums [2C]
        job.partBytes = c * (2 * 8 + 2 * 4)
        job.runSplit()
        if let gammaGrad, let betaGrad {
            for j in 0..<c { gammaGrad[j] += Float(totals[j]); betaGrad[j] += Float(totals[c + j]) }
        }
    }

    /// ``backward(gradOutput:input:shape:gamma:shift:meanOffset:invStd:gradInput:gammaGrad:betaGrad:totals:blockSums:fixedStatistics:)``
    /// on the rows of `samples` (the batch, or one thread's share): dx, and
    /// (wantsParams) the samples' Σdy·x̂, Σdy per channel into `totals`
    /// (overwritten); fences its own streaming stores.
    @inlinable
    static func _backwardSamples<Mask: _GradientMask>(
        gradOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, mask: Mask.Type, input: UnsafePointer<Float>, shape: GroupNormShape, samples: Range<Int>,
        gamma: UnsafePointer<Float>?,
        shift: UnsafePointer<Float>, meanOffset: UnsafePointer<Double>, invStd: UnsafePointer<Double>,
        gradInput: UnsafeMutablePointer<Float>?, wantsParams: Bool,
        totals: UnsafeMutablePointer<Double>, blockSums block: UnsafeMutablePointer<Float>,
        fixedStatistics: Bool, streaming: Bool
    ) {
        let c = shape.c, m = shape.valuesPerRow, k = shape.channelsPerGroup, l = shape.l
        defer { if streaming && gradInput != nil { bnk_stream_fence() } }
        // Σdy·x̂ and Σdy per channel: Double totals, and (L = 1) Float32 sums
        // of one block of at most 64 samples that are folded into them
        totals.update(repeating: 0, count: 2 * c)
        block.update(repeating: 0, count: 2 * c)
        // LayerNorm rows (L = 1, one group) of a cache-resident batch go two
        // samples at a time: two independent reduction chains and one
        // load and store of the parameter sums per vector for both (as in the
        // forward; pairs start at even offsets, so none straddles a 64-sample block)
        let pairs = l == 1 && shape.groups == 1
            && 3 * shape.elementCount * MemoryLayout<Float>.size <= _residentBytes()
        @inline(__always) func operands(_ row: Int) -> _RowOperands {
            _RowOperands(dy: gradOutput + row * m, y: output + row * m, x: input + row * m,
                         shift: shift[row], invStd: Float(invStd[row]), meanOffset: Float(meanOffset[row]))
        }
        // pass 2: dx = (s·γ)·dy + q·(x − shift) + w
        @inline(__always) func gradInputTerms(_ row: Int, _ first: Int, _ sums: (a: Double, b: Double)) -> _GroupGradInputTerms<Mask> {
            let s = invStd[row], delta = meanOffset[row]
            let q = fixedStatistics ? 0 : -s * s * sums.b / Double(m)
            let w = fixedStatistics ? 0 : s * (s * delta * sums.b - sums.a) / Double(m)
            return _GroupGradInputTerms<Mask>(dy: gradOutput + row * m, y: output + row * m, x: input + row * m,
                                              gamma: gamma.map { $0 + first }, output: gradInput! + row * m,
                                              shift: shift[row], invStd: Float(s), inputScale: Float(q), constant: Float(w))
        }
        var sample = samples.lowerBound
        while sample < samples.upperBound {
            if pairs && sample + 1 < samples.upperBound {
                // two calls, so that each inlined copy knows whether it adds parameter sums (no test per vector)
                let sums = wantsParams
                    ? _reduceRowAcrossChannels(operands(sample), operands(sample + 1), rows: 2, mask: mask, channels: k,
                                               gamma: gamma, paramSums: (block, block + c))
                    : _reduceRowAcrossChannels(operands(sample), operands(sample + 1), rows: 2, mask: mask, channels: k,
                                               gamma: gamma, paramSums: nil)
                if gradInput != nil {
                    _elementwiseRowPair(gradInputTerms(sample, 0, sums.0), gradInputTerms(sample + 1, 0, sums.1), rows: 2,
                                     shape: shape, streaming: streaming)
                }
                sample += 1
            } else {
                for group in 0..<shape.groups {
                    let row = sample * shape.groups + group, first = group * k
                    let o = operands(row)
                    // pass 1: A = Σγ·dy, B = Σγ·dy·x̂, and the parameter sums
                    let sums = l == 1
                        ? _reduceRowAcrossChannels(o, o, rows: 1, mask: mask, channels: k, gamma: gamma.map { $0 + first },
                                                   paramSums: wantsParams ? (block + first, block + c + first) : nil).0
                        : _reduceRowAlongRuns(dy: o.dy, y: o.y, mask: mask, x: o.x, channels: k, l: l, gamma: gamma.map { $0 + first },
                                              shift: o.shift, invStd: o.invStd, meanOffset: o.meanOffset,
                                              paramSums: wantsParams ? (totals + first, totals + c + first) : nil)
                    if gradInput != nil {
                        _elementwiseRow(gradInputTerms(row, first, sums), channels: k, l: l, streaming: streaming)
                    }
                }
            }
            if l == 1 && wantsParams && ((sample - samples.lowerBound) % _rowsPerBlock == _rowsPerBlock - 1 || sample == samples.upperBound - 1) {
                for j in 0..<(2 * c) { totals[j] += Double(block[j]); block[j] = 0 }
            }
            sample += 1
        }
    }

    /// One row with L = 1 (`rows` 1), or two rows of the same channels
    /// (`rows` 2, a constant after inlining; `second` describes the other
    /// row), vectors across the channels: returns each row's (A, B) (the
    /// first row's twice when `rows` is 1); adds dy·x̂ and dy into `paramSums`
    /// (Float32 block sums) when given, the first row's terms before the
    /// second's as two calls would. A pair runs two independent chains.
    @inlinable @inline(__always)
    static func _reduceRowAcrossChannels<Mask: _GradientMask>(
        _ row: _RowOperands, _ second: _RowOperands, rows: Int, mask: Mask.Type, channels: Int, gamma: UnsafePointer<Float>?,
        paramSums: (gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>)?
    ) -> ((a: Double, b: Double), (a: Double, b: Double)) {
        let k = _Vector(repeating: row.shift), r = _Vector(repeating: row.invStd)
        let offset = _Vector(repeating: -row.meanOffset * row.invStd)
        let k1 = _Vector(repeating: second.shift), r1 = _Vector(repeating: second.invStd)
        let offset1 = _Vector(repeating: -second.meanOffset * second.invStd)
        let vectorEnd = channels - channels % _lanes
        var a = 0.0, b = 0.0, a1 = 0.0, b1 = 0.0
        var j = 0
        while j < vectorEnd {
            let blockEnd = min(vectorEnd, j + _rowsPerBlock * _lanes)
            var va = _Vector(), vb = _Vector(), va1 = _Vector(), vb1 = _Vector()
            while j < blockEnd {
                let gammaJ = _load(gamma, j, orIdentity: 1)
                let d = Mask.vector(row.dy, row.y, at: j), xh = _mulAdd(_load(row.x + j) - k, r, offset)
                let g = d * gammaJ
                va += g; vb = _mulAdd(g, xh, vb)
                var sumGamma = _Vector(), sumBeta = _Vector()
                if let paramSums {
                    sumGamma = _mulAdd(d, xh, _load(paramSums.gamma + j))
                    sumBeta = _load(paramSums.beta + j) + d
                }
                if rows == 2 {
                    let d1 = Mask.vector(second.dy, second.y, at: j), xh1 = _mulAdd(_load(second.x + j) - k1, r1, offset1)
                    let g1 = d1 * gammaJ
                    va1 += g1; vb1 = _mulAdd(g1, xh1, vb1)
                    if paramSums != nil { sumGamma = _mulAdd(d1, xh1, sumGamma); sumBeta = sumBeta + d1 }
                }
                if let paramSums { _store(sumGamma, paramSums.gamma + j); _store(sumBeta, paramSums.beta + j) }
                j &+= _lanes
            }
            a += _sumLanes(va); b += _sumLanes(vb)
            if rows == 2 { a1 += _sumLanes(va1); b1 += _sumLanes(vb1) }
        }
        @inline(__always) func tail(_ o: _RowOperands, _ j: Int, _ a: inout Double, _ b: inout Double) {
            let d = Mask.scalar(o.dy, o.y, at: j), xh = (o.x[j] - o.shift) * o.invStd - o.meanOffset * o.invStd
            let g = d * (gamma?[j] ?? 1)
            a += Double(g); b += Double(g * xh)
            if let paramSums { paramSums.gamma[j] += d * xh; paramSums.beta[j] += d }
        }
        while j < channels {
            tail(row, j, &a, &b)
            if rows == 2 { tail(second, j, &a1, &b1) }
            j += 1
        }
        if rows != 2 { (a1, b1) = (a, b) }
        return ((a, b), (a1, b1))
    }

    /// One row with L > 1, vectors along each channel's run: returns (A, B);
    /// adds Σdy·x̂ and Σdy of each run into `paramSums` (Double totals) when given.
    @inlinable @inline(__always)
    static func _reduceRowAlongRuns<Mask: _GradientMask>(
        dy: UnsafePointer<Float>, y: UnsafePointer<Float>, mask: Mask.Type, x: UnsafePointer<Float>, channels: Int, l: Int, gamma: UnsafePointer<Float>?,
        shift: Float, invStd: Float, meanOffset: Float,
        paramSums: (gamma: UnsafeMutablePointer<Double>, beta: UnsafeMutablePointer<Double>)?
    ) -> (a: Double, b: Double) {
        let k = _Vector(repeating: shift), r = _Vector(repeating: invStd)
        let offset = _Vector(repeating: -meanOffset * invStd)
        let vectorEnd = l - l % _lanes
        var a = 0.0, b = 0.0
        for channel in 0..<channels {
            let p = dy + channel * l, py = y + channel * l, q = x + channel * l
            var sumDy = 0.0, sumDyXh = 0.0
            var i = 0
            while i < vectorEnd {
                let blockEnd = min(vectorEnd, i + _rowsPerBlock * _lanes)
                var v1 = _Vector(), v2 = _Vector()
                while i < blockEnd {
                    let d = Mask.vector(p, py, at: i)
                    v1 += d; v2 = _mulAdd(d, _mulAdd(_load(q + i) - k, r, offset), v2)
                    i += _lanes
                }
                sumDy += _sumLanes(v1); sumDyXh += _sumLanes(v2)
            }
            while i < l {
                let d = Mask.scalar(p, py, at: i), xh = (q[i] - shift) * invStd - meanOffset * invStd
                sumDy += Double(d); sumDyXh += Double(d * xh)
                i += 1
            }
            // γ is constant along the run: A += γ·Σdy, B += γ·Σdy·x̂
            let g = Double(gamma?[channel] ?? 1)
            a += g * sumDy; b += g * sumDyXh
            if let paramSums { paramSums.gamma[channel] += sumDyXh; paramSums.beta[channel] += sumDy }
        }
        return (a, b)
    }
}

/// One row of GroupNorm's dx pass: dx = (invStd·γ)·dy + inputScale·(x − shift)
/// + constant (pointers at the row's first value and first channel), dy read
/// through `Mask` (y: the array it reads).
@usableFromInline struct _GroupGradInputTerms<Mask: _GradientMask>: _ElementwiseTerms {
    @usableFromInline let dy, y, x: UnsafePointer<Float>
    @usableFromInline let gamma: UnsafePointer<Float>?
    @usableFromInline let output: UnsafeMutablePointer<Float>
    @usableFromInline let shift, invStd, inputScale, constant: Float

    @inlinable init(dy: UnsafePointer<Float>, y: UnsafePointer<Float>, x: UnsafePointer<Float>, gamma: UnsafePointer<Float>?,
                    output: UnsafeMutablePointer<Float>, shift: Float, invStd: Float, inputScale: Float, constant: Float) {
        self.dy = dy; self.y = y; self.x = x; self.gamma = gamma; self.output = output
        self.shift = shift; self.invStd = invStd; self.inputScale = inputScale; self.constant = constant
    }

    @inlinable static var streams: Int { Mask.reads + 2 }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector, _Vector, _Vector) {
        (_Vector(repeating: shift), _Vector(repeating: invStd) * _load(gamma, j, orIdentity: 1),
         _Vector(repeating: inputScale), _Vector(repeating: constant))
    }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector, _Vector, _Vector) {
        (_Vector(repeating: shift), _Vector(repeating: invStd * (gamma?[f] ?? 1)),
         _Vector(repeating: inputScale), _Vector(repeating: constant))
    }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector, _Vector, _Vector), at o: Int) -> _Vector {
        _mulAdd(k.1, Mask.vector(dy, y, at: o), _mulAdd(_load(x + o) - k.0, k.2, k.3))
    }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        _mulAdd(invStd * (gamma?[f] ?? 1), Mask.scalar(dy, y, at: o), _mulAdd(x[o] - shift, inputScale, constant))
    }
}

/// One statistics row's arrays (at its first value) and statistics, for the
/// backward's reductions.
@usableFromInline struct _RowOperands {
    @usableFromInline let dy, y, x: UnsafePointer<Float>
    @usableFromInline let shift, invStd, meanOffset: Float

    @inlinable init(dy: UnsafePointer<Float>, y: UnsafePointer<Float>, x: UnsafePointer<Float>,
                    shift: Float, invStd: Float, meanOffset: Float) {
        self.dy = dy; self.y = y; self.x = x; self.shift = shift; self.invStd = invStd; self.meanOffset = meanOffset
    }
}
