// MARK: - Shared one-pass column reduction
//
// Both the statistics pass and the backward pass need two per-feature sums
// over the batch, computed on `d = x − shift` in one read of the data:
//   statistics: Σd and Σd²        backward: Σdy and Σdy·d
// Rows are summed in Float32 blocks of `_rowsPerBlock`, vectorised across
// features, and each block is folded into Double.

@usableFromInline protocol _PairTerms {
    /// The two terms one element adds to the sums, `d = x − shift`.
    static func terms(d: _Vector, dy: _Vector) -> (_Vector, _Vector)
    static func terms(d: Float, dy: Float) -> (Float, Float)
}

/// Σd and Σd² (the statistics pass; `dy` is ignored).
@usableFromInline enum _MomentTerms: _PairTerms {
    @inlinable @inline(__always)
    static func terms(d: _Vector, dy: _Vector) -> (_Vector, _Vector) { (d, d * d) }
    @inlinable @inline(__always)
    static func terms(d: Float, dy: Float) -> (Float, Float) { (d, d * d) }
}

/// Σdy and Σdy·d (the backward pass).
@usableFromInline enum _GradTerms: _PairTerms {
    @inlinable @inline(__always)
    static func terms(d: _Vector, dy: _Vector) -> (_Vector, _Vector) { (dy, dy * d) }
    @inlinable @inline(__always)
    static func terms(d: Float, dy: Float) -> (Float, Float) { (dy, dy * d) }
}

extension BatchNormKernel {
    /// sum1[c] = Σ first term, sum2[c] = Σ second term over the N·L values
    /// of feature c.
    ///
    /// - x, dy: `(N, C, L)`; shift: `[C]`; sum1, sum2: `[C]` (Double,
    ///   overwritten); scratch: `[2·C]` Float32 workspace.
    @inlinable
    static func _reducePairs<T: _PairTerms>(
        _: T.Type,
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>,
        sum1: UnsafeMutablePointer<Double>, sum2: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let n = shape.n, c = shape.c, l = shape.l
        sum1.update(repeating: 0, count: c)
        sum2.update(repeating: 0, count: c)
        if l == 1 {
            _reduceRows(T.self, x: x, dy: dy, n: n, c: c, shift: shift,
                        sum1: sum1, sum2: sum2, scratch: scratch)
        } else {
            _reduceRuns(T.self, x: x, dy: dy, shape: shape, shift: shift, sum1: sum1, sum2: sum2)
        }
    }

    /// `(N, C)`: vectorised across features, four rows per accumulator
    /// load/store so the Float32 block sums stay in L1.
    @inlinable
    static func _reduceRows<T: _PairTerms>(
        _: T.Type,
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, n: Int, c: Int,
        shift: UnsafePointer<Float>,
        sum1: UnsafeMutablePointer<Double>, sum2: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let s1 = scratch, s2 = scratch + c
        let vectorEnd = c - c % _lanes
        var blockStart = 0
        while blockStart < n {
            let blockEnd = min(n, blockStart + _rowsPerBlock)
            s1.update(repeating: 0, count: c)
            s2.update(repeating: 0, count: c)
            var row = blockStart
            while row < blockEnd {
                let rows = min(4, blockEnd - row)   // 4 rows per pass, fewer at the end
                let base = row * c
                var j = 0
                while j < vectorEnd {
                    let k = _load(shift + j)
                    var a1 = _load(s1 + j), a2 = _load(s2 + j)
                    for r in 0..<rows {
                        let o = base + r * c + j
                        let (t1, t2) = T.terms(d: _load(x + o) - k, dy: _load(dy + o))
                        a1 += t1; a2 += t2
                    }
                    _store(a1, s1 + j); _store(a2, s2 + j)
                    j += _lanes
                }
                while j < c {   // feature tail (C not a multiple of 8)
                    for r in 0..<rows {
                        let o = base + r * c + j
                        let (t1, t2) = T.terms(d: x[o] - shift[j], dy: dy[o])
                        s1[j] += t1; s2[j] += t2
                    }
                    j += 1
                }
                row += rows
            }
            // fold the Float32 block into the Double totals
            for j in 0..<c {
                sum1[j] += Double(s1[j]); sum2[j] += Double(s2[j])
            }
            blockStart = blockEnd
        }
    }

    /// `(N, C, L)`, L > 1: each (sample, feature) is a contiguous run of L
    /// values, vectorised along the run and folded into Double per run block.
    @inlinable
    static func _reduceRuns<T: _PairTerms>(
        _: T.Type,
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>,
        sum1: UnsafeMutablePointer<Double>, sum2: UnsafeMutablePointer<Double>
    ) {
        let n = shape.n, c = shape.c, l = shape.l
        let blockLength = _rowsPerBlock * _lanes
        for sample in 0..<n {
            for feature in 0..<c {
                let run = (sample * c + feature) * l
                let k = _Vector(repeating: shift[feature])
                var start = 0
                while start < l {
                    let end = min(l, start + blockLength)
                    var a1 = _Vector(), a2 = _Vector()
                    var i = start
                    while i + _lanes <= end {
                        let (t1, t2) = T.terms(d: _load(x + run + i) - k, dy: _load(dy + run + i))
                        a1 += t1; a2 += t2
                        i += _lanes
                    }
                    var r1 = _sumLanes(a1), r2 = _sumLanes(a2)
                    while i < end {
                        let (t1, t2) = T.terms(d: x[run + i] - shift[feature], dy: dy[run + i])
                        r1 += Double(t1); r2 += Double(t2)
                        i += 1
                    }
                    sum1[feature] += r1; sum2[feature] += r2
                    start = end
                }
            }
        }
    }
}
