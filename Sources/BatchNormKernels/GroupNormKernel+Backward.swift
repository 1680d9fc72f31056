import CBatchNormKitIntrinsics

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
        for sample in samples {
            for group in 0..<shape.groups {
                let row = sample * shape.groups + group, first = group * k
                let dy = gradOutput + row * m, y = output + row * m, x = input + row * m
                let s = invStd[row], delta = meanOffset[row]
                // pass 1: A = Σγ·dy, B = Σγ·dy·x̂, and the parameter sums
                let sums = l == 1
                    ? _reduceRowAcrossChannels(dy: dy, y: y, mask: mask, x: x, channels: k, gamma: gamma.map { $0 + first }, shift: shift[row],
                                               invStd: Float(s), meanOffset: Float(delta),
                                               paramSums: wantsParams ? (block + first, block + c + first) : nil)
                    : _reduceRowAlongRuns(dy: dy, y: y, mask: mask, x: x, channels: k, l: l, gamma: gamma.map { $0 + first }, shift: shift[row],
                                          invStd: Float(s), meanOffset: Float(delta),
                                          paramSums: wantsParams ? (totals + first, totals + c + first) : nil)
                // pass 2: dx = (s·γ)·dy + q·(x − shift) + w
                if let gradInput {
                    let q = fixedStatistics ? 0 : -s * s * sums.b / Double(m)
                    let w = fixedStatistics ? 0 : s * (s * delta * sums.b - sums.a) / Double(m)
                    _elementwiseRow(_GroupGradInputTerms<Mask>(dy: dy, y: y, x: x, gamma: gamma.map { $0 + first }, output: gradInput + row * m,
                                                         shift: shift[row], invStd: Float(s),
                                                         inputScale: Float(q), constant: Float(w)),
                                    channels: k, l: l, streaming: streaming)
                }
            }
            if l == 1 && wantsParams && ((sample - samples.lowerBound) % _rowsPerBlock == _rowsPerBlock - 1 || sample == samples.upperBound - 1) {
                for j in 0..<(2 * c) { totals[j] += Double(block[j]); block[j] = 0 }
            }
        }
    }

    /// One row with L = 1, vectors across its channels: returns (A, B);
    /// adds dy·x̂ and dy into `paramSums` (Float32 block sums) when given.
    @inlinable @inline(__always)
    static func _reduceRowAcrossChannels<Mask: _GradientMask>(
        dy: UnsafePointer<Float>, y: UnsafePointer<Float>, mask: Mask.Type, x: UnsafePointer<Float>, channels: Int, gamma: UnsafePointer<Float>?,
        shift: Float, invStd: Float, meanOffset: Float,
        paramSums: (gamma: UnsafeMutablePointer<Float>, beta: UnsafeMutablePointer<Float>)?
    ) -> (a: Double, b: Double) {
        let k = _Vector(repeating: shift), r = _Vector(repeating: invStd)
        let offset = _Vector(repeating: -meanOffset * invStd)
        let vectorEnd = channels - channels % _lanes
        var a = 0.0, b = 0.0
        var j = 0
        while j < vectorEnd {
            let blockEnd = min(vectorEnd, j + _rowsPerBlock * _lanes)
            var va = _Vector(), vb = _Vector()
            while j < blockEnd {
                let d = Mask.vector(dy, y, at: j), xh = _mulAdd(_load(x + j) - k, r, offset)
                let g = d * _load(gamma, j, orIdentity: 1)
                va += g; vb = _mulAdd(g, xh, vb)
                if let paramSums {
                    _store(_mulAdd(d, xh, _load(paramSums.gamma + j)), paramSums.gamma + j)
                    _store(_load(paramSums.beta + j) + d, paramSums.beta + j)
                }
                j += _lanes
            }
            a += _sumLanes(va); b += _sumLanes(vb)
        }
        while j < channels {
            let d = Mask.scalar(dy, y, at: j), xh = (x[j] - shift) * invStd - meanOffset * invStd
            let g = d * (gamma?[j] ?? 1)
            a += Double(g); b += Double(g * xh)
            if let paramSums { paramSums.gamma[j] += d * xh; paramSums.beta[j] += d }
            j += 1
        }
        return (a, b)
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
        invStd * (gamma?[f] ?? 1) * Mask.scalar(dy, y, at: o) + ((x[o] - shift) * inputScale + constant)
    }
}
