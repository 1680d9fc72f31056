import KernelSupport

// MARK: - Shared one-pass column reduction
//
// Both the statistics pass and the backward pass need two per-feature sums
// over the batch, computed on `d = x − shift` in one read of the data:
//   statistics: Σd and Σd²        backward: Σdy and Σdy·d
// Rows are summed in Float32 blocks of `_rowsPerBlock`, vectorised across
// features, and each block is folded into Double.
//
// Speed (see Benchmarks/README.md, "Kernel layout"): up to eight rows per
// pass over the Float32 block sums, so the sums are loaded and stored once
// per group of rows (``_rowGroup(c:rows:streams:maximum:)`` picks the group
// from the row length and the batch size); two independent accumulator
// chains per pass; and the blocks are visited from the last row to the first. A reduction usually reads data that was just
// written front to back (by the previous layer, or by the last elementwise
// pass), so starting at the end reads the most recently touched — still
// cached — rows first, and the elementwise pass that follows (front to back)
// again starts with the rows this pass touched last.

@usableFromInline protocol _PairTerms {
    /// Arrays the pass reads (for the row grouping).
    static var streams: Int { get }
    /// The fewest rows the row loop reads per pass (``_rowGroup(c:rows:streams:maximum:)``
    /// may choose more): 2 for the ReLU terms, whose loads of scale and bias
    /// and of the block sums per vector then serve two rows (one row per
    /// pass was slower for 4 KB rows from memory: Benchmarks/README.md,
    /// "Measurements behind the kernels"); 1 for the others. Where the plain
    /// reduction reads one row (batches from memory), the ReLU sums then add
    /// the same terms in another order: a rounding apart from the unfused pair.
    static var leastRowGroup: Int { get }
    /// Which terms these are, for the pool's parts (a C function pointer
    /// cannot be generic; a generic entry called across modules would run
    /// unspecialised).
    static var kind: _PairKind { get }
    /// Adds one element's two terms to the sums, `d = x − shift`; `scale`
    /// and `bias` are the forward's constants at these features (read only
    /// by the ReLU terms, for the pre-activation d·scale + bias: the loads
    /// are dead code for the others).
    static func accumulate(d: _Vector, dy: _Vector, scale: _Vector, bias: _Vector, _ s1: inout _Vector, _ s2: inout _Vector)
    /// The same on 16 lanes (the register strips,
    /// ``BatchNormKernel/_reduceStrip(_:_:rows:c:from:)``): written out per
    /// type, as SIMD code generic over the width runs lane by lane.
    static func accumulate(d: _Wide, dy: _Wide, scale: _Wide, bias: _Wide, _ s1: inout _Wide, _ s2: inout _Wide)
    static func terms(d: Float, dy: Float, scale: Float, bias: Float) -> (Float, Float)
}

/// The arrays of one reduction: it reads x and dy (`(N, C, L)`), shift and
/// — only terms that use them — scale and bias (`[C]`; any `[C]` array for
/// the others), adds into sum1, sum2 (`[C]`, Double) and keeps its Float32
/// block sums in scratch (`[2·C]`).
@usableFromInline struct _PairArrays {
    @usableFromInline var x, dy, shift, scale, bias: UnsafePointer<Float>
    @usableFromInline var sum1, sum2: UnsafeMutablePointer<Double>
    @usableFromInline var scratch: UnsafeMutablePointer<Float>

    @inlinable init(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, shift: UnsafePointer<Float>,
                    scale: UnsafePointer<Float>, bias: UnsafePointer<Float>, sum1: UnsafeMutablePointer<Double>,
                    sum2: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Float>) {
        self.x = x; self.dy = dy; self.shift = shift; self.scale = scale; self.bias = bias
        self.sum1 = sum1; self.sum2 = sum2; self.scratch = scratch
    }
}

/// The term types of the reductions.
@usableFromInline enum _PairKind { case moments, grad, gradReLU }

/// Σd and Σd² (the statistics pass; `dy` is ignored).
@usableFromInline enum _MomentTerms: _PairTerms {
    @inlinable static var streams: Int { 1 }
    @inlinable static var leastRowGroup: Int { 1 }
    @inlinable static var kind: _PairKind { .moments }
    @inlinable @inline(__always)
    static func accumulate(d: _Vector, dy: _Vector, scale: _Vector, bias: _Vector, _ s1: inout _Vector, _ s2: inout _Vector) {
        s1 += d; s2 = _mulAdd(d, d, s2)
    }
    @inlinable @inline(__always)
    static func accumulate(d: _Wide, dy: _Wide, scale: _Wide, bias: _Wide, _ s1: inout _Wide, _ s2: inout _Wide) {
        s1 += d; s2 = _mulAdd(d, d, s2)
    }
    @inlinable @inline(__always)
    static func terms(d: Float, dy: Float, scale: Float, bias: Float) -> (Float, Float) { (d, d * d) }
}

/// Σdy and Σdy·d (the backward pass).
@usableFromInline enum _GradTerms: _PairTerms {
    @inlinable static var streams: Int { 2 }
    @inlinable static var leastRowGroup: Int { 1 }
    @inlinable static var kind: _PairKind { .grad }
    @inlinable @inline(__always)
    static func accumulate(d: _Vector, dy: _Vector, scale: _Vector, bias: _Vector, _ s1: inout _Vector, _ s2: inout _Vector) {
        s1 += dy; s2 = _mulAdd(dy, d, s2)
    }
    @inlinable @inline(__always)
    static func accumulate(d: _Wide, dy: _Wide, scale: _Wide, bias: _Wide, _ s1: inout _Wide, _ s2: inout _Wide) {
        s1 += dy; s2 = _mulAdd(dy, d, s2)
    }
    @inlinable @inline(__always)
    static func terms(d: Float, dy: Float, scale: Float, bias: Float) -> (Float, Float) { (dy, dy * d) }
}

extension BatchNormKernel {
    /// a.sum1[c] = Σ first term, a.sum2[c] = Σ second term over the N·L
    /// values of feature c (overwritten).
    @inlinable
    static func _reducePairs<T: _PairTerms>(_: T.Type, _ a: _PairArrays, shape: BatchNormShape) {
        a.sum1.update(repeating: 0, count: shape.c)
        a.sum2.update(repeating: 0, count: shape.c)
        let parts = _threadParts(shape)
        if parts > 1 {
            _reduceParallel(T.kind, a, shape: shape, parts: parts)
        } else {
            _reduceSamples(T.self, a, shape: shape, samples: 0..<shape.n)
        }
    }

    /// Adds the sums of samples `samples` (the batch, or one thread's share)
    /// into sum1, sum2: rows for `(N, C)`, runs for `(N, C, L)`.
    @inlinable
    static func _reduceSamples<T: _PairTerms>(_: T.Type, _ a: _PairArrays, shape: BatchNormShape, samples: Range<Int>) {
        if shape.l == 1 {
            _reduceRows(T.self, a, rows: samples, batchRows: shape.n, c: shape.c)
        } else {
            _reduceRuns(T.self, a, samples: samples, c: shape.c, l: shape.l)
        }
    }

    /// `(N, C)`: vectorised across features; up to eight rows per load/store
    /// of the Float32 block sums, which stay in L1 (`2·C` floats).
    /// Adds the sums of `rows` into sum1, sum2; `batchRows` (the whole
    /// batch, of which `rows` may be one thread's share) sets the row grouping.
    @inlinable
    static func _reduceRows<T: _PairTerms>(_: T.Type, _ a: _PairArrays, rows: Range<Int>, batchRows: Int, c: Int) {
        let x = a.x, dy = a.dy, shift = a.shift, scale = a.scale, bias = a.bias, sum1 = a.sum1, sum2 = a.sum2
        let s1 = a.scratch, s2 = a.scratch + c
        let strips = _takesStrips(c: c)
        let group = strips ? 1 : max(T.leastRowGroup, _rowGroup(c: c, rows: batchRows, streams: T.streams, maximum: 8))
        // blocks from the last to the first (see the top of this file)
        var blockEnd = rows.upperBound
        while blockEnd > rows.lowerBound {
            let blockStart = max(rows.lowerBound, blockEnd - _rowsPerBlock)
            s1.update(repeating: 0, count: c)
            s2.update(repeating: 0, count: c)
            if strips {
                _reduceStrips(T.self, a, rows: blockStart..<blockEnd, c: c)
            } else {
                var row = blockStart
                switch group {
                case 8:
                    while row + 8 <= blockEnd { _reduceGroup(T.self, x: x + row * c, dy: dy + row * c, c: c, width: c, rows: 8, shift: shift, scale: scale, bias: bias, s1: s1, s2: s2); row += 8 }
                case 4:
                    while row + 4 <= blockEnd { _reduceGroup(T.self, x: x + row * c, dy: dy + row * c, c: c, width: c, rows: 4, shift: shift, scale: scale, bias: bias, s1: s1, s2: s2); row += 4 }
                case 2:
                    while row + 2 <= blockEnd { _reduceGroup(T.self, x: x + row * c, dy: dy + row * c, c: c, width: c, rows: 2, shift: shift, scale: scale, bias: bias, s1: s1, s2: s2); row += 2 }
                default:
                    break
                }
                while row < blockEnd { _reduceGroup(T.self, x: x + row * c, dy: dy + row * c, c: c, width: c, rows: 1, shift: shift, scale: scale, bias: bias, s1: s1, s2: s2); row += 1 }
            }
            // fold the Float32 block into the Double totals
            for j in 0..<c {
                sum1[j] += Double(s1[j]); sum2[j] += Double(s2[j])
            }
            blockEnd = blockStart
        }
    }

    /// How many rows of an `(N, C)` batch a pass should read together:
    /// `streams` arrays (x, or x and dy; plus the output for elementwise
    /// passes) are read row by row, and reading several rows at once lets one
    /// load of the per-feature sums or constants serve all of them
    /// (Benchmarks/README.md, "Kernel layout"):
    /// - cache-resident batches (``cacheResidentBytes``, derived from the
    ///   machine's L2): as many rows as allowed;
    /// - rows a multiple of 4 KB apart map to the same L1 set: at most six
    ///   such lines at once (8 ways, two left for the sums/constants);
    /// - batches streamed from memory with short rows (< 4 KB): one row at a
    ///   time, so the hardware prefetcher sees one sequential stream — several
    ///   interleaved 1 KB streams halve the bandwidth;
    /// - a pass whose arrays together reach the L3's size comes from memory
    ///   whatever its rows: one row at a time too, also for 4 KB rows (below
    ///   the L3's size one row was slower; Benchmarks/README.md, "Rows of 4 KB
    ///   from memory").
    @inlinable
    static func _rowGroup(c: Int, rows: Int, streams: Int, maximum: Int) -> Int {
        let rowBytes = c * 4
        let batchBytes = rowBytes * rows * streams
        var group = maximum
        if batchBytes > _residentBytes() && rowBytes < 4096 { return 1 }
        if batchBytes >= _fromMemoryBytes { return 1 }
        if rowBytes % 4096 == 0 {
            while group > 1 && group * streams > 6 { group /= 2 }
        }
        return group
    }

    /// s1, s2 += the terms of `rows` consecutive rows starting at x, dy (a
    /// constant after inlining): one load and store of the block sums per
    /// vector of features for all of them; two independent chains (even and
    /// odd rows) for the adders' latency.
    @inlinable @inline(__always)
    static func _reduceGroup<T: _PairTerms>(
        _: T.Type, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, c: Int, width: Int, rows: Int,
        shift: UnsafePointer<Float>, scale: UnsafePointer<Float>, bias: UnsafePointer<Float>,
        s1: UnsafeMutablePointer<Float>, s2: UnsafeMutablePointer<Float>
    ) {
        let vectorEnd = width - width % _lanes
        var j = 0
        while j < vectorEnd {
            let k = _load(shift + j), ka = _load(scale + j), kb = _load(bias + j)
            let p = x + j, q = dy + j
            var e1 = _load(s1 + j), e2 = _load(s2 + j)
            var o1 = _Vector(), o2 = _Vector()
            // wrapping offsets (inside the batch): no overflow branch per vector
            var r = 0
            while r + 2 <= rows {
                let o = r &* c, n = o &+ c
                T.accumulate(d: _load(p + o) - k, dy: _load(q + o), scale: ka, bias: kb, &e1, &e2)
                T.accumulate(d: _load(p + n) - k, dy: _load(q + n), scale: ka, bias: kb, &o1, &o2)
                r += 2
            }
            if r < rows { let o = r &* c; T.accumulate(d: _load(p + o) - k, dy: _load(q + o), scale: ka, bias: kb, &e1, &e2) }
            if rows == 1 {
                _store(e1, s1 + j); _store(e2, s2 + j)
            } else {
                _store(e1 + o1, s1 + j); _store(e2 + o2, s2 + j)
            }
            j += _lanes
        }
        // the feature tail (C not a multiple of 8), scalar
        for f in j..<width {
            var a1 = s1[f], a2 = s2[f]
            for r in 0..<rows {
                let o = r &* c &+ f
                let (t1, t2) = T.terms(d: x[o] - shift[f], dy: dy[o], scale: scale[f], bias: bias[f])
                a1 += t1; a2 += t2
            }
            s1[f] = a1; s2[f] = a2
        }
    }

    /// Whether a reduction over `(N, C)` rows of `c` features sums register
    /// strips instead of going row by row (``_rowGroup(c:rows:streams:maximum:)``):
    /// rows of one to four strips (under 4 KB, where a strip reads whole
    /// rows or long runs of them), ``reductionStrips`` on — from memory and
    /// cache-resident alike (`bnkbench --tune`: strips beat eight rows per
    /// pass from 256 KB of batch up).
    @inlinable
    package static func _takesStrips(c: Int) -> Bool {
        c >= _stripWidth && c * MemoryLayout<Float>.size < 4096 && _usesReductionStrips()
    }

    /// a.scratch's block sums = the terms of `rows` (one block): strips of
    /// ``_stripWidth`` features summed in registers, then the features left
    /// over (C not a multiple of the strip) one row at a time. Each
    /// feature's sum takes the same additions in the same order as
    /// ``_reduceGroup(_:x:dy:c:width:rows:shift:scale:bias:s1:s2:)`` with `rows` 1
    /// (the loop for batches from memory), so the results are bit-identical
    /// to that loop's; a cache-resident batch, which the row loop reads
    /// several rows at a time in two chains, gets sums a few ulps apart.
    @inlinable
    static func _reduceStrips<T: _PairTerms>(_: T.Type, _ a: _PairArrays, rows: Range<Int>, c: Int) {
        var j = 0
        while j + _stripWidth <= c { _reduceStrip(T.self, a, rows: rows, c: c, from: j); j += _stripWidth }
        guard j < c else { return }
        for r in rows {
            let o = r * c + j
            _reduceGroup(T.self, x: a.x + o, dy: a.dy + o, c: c, width: c - j, rows: 1, shift: a.shift + j,
                         scale: a.scale + j, bias: a.bias + j, s1: a.scratch + j, s2: a.scratch + c + j)
        }
    }

    /// a.scratch's block sums of features `j0 ..< j0 + _stripWidth` = the
    /// terms of `rows`, in 16 + 16 vector registers: each row's 1 KB of the
    /// strip is read front to back and the sums are neither loaded nor
    /// stored per row — the row loop's two loads and two stores of the sums
    /// per vector are what bound it from memory (Benchmarks/README.md,
    /// "Measurements behind the kernels").
    @inlinable @inline(__always)
    static func _reduceStrip<T: _PairTerms>(_: T.Type, _ a: _PairArrays, rows: Range<Int>, c: Int, from j0: Int) {
        let x = a.x + j0, dy = a.dy + j0, shift = a.shift + j0, scale = a.scale + j0, bias = a.bias + j0
        let z = _Wide()
        // named accumulators (a tuple's elements passed inout): an indexed
        // array of them stays in memory and is read-modified-written per row
        var s = (z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z), q = s
        for r in rows {
            let o = r &* c
            @inline(__always) func add(_ v: Int, _ s: inout _Wide, _ q: inout _Wide) {
                let i = o &+ v &* _wideLanes, f = v &* _wideLanes
                T.accumulate(d: _loadWide(x + i) - _loadWide(shift + f), dy: _loadWide(dy + i),
                             scale: _loadWide(scale + f), bias: _loadWide(bias + f), &s, &q)
            }
            add(0, &s.0, &q.0); add(1, &s.1, &q.1); add(2, &s.2, &q.2); add(3, &s.3, &q.3)
            add(4, &s.4, &q.4); add(5, &s.5, &q.5); add(6, &s.6, &q.6); add(7, &s.7, &q.7)
            add(8, &s.8, &q.8); add(9, &s.9, &q.9); add(10, &s.10, &q.10); add(11, &s.11, &q.11)
            add(12, &s.12, &q.12); add(13, &s.13, &q.13); add(14, &s.14, &q.14); add(15, &s.15, &q.15)
        }
        let p1 = a.scratch + j0, p2 = a.scratch + c + j0
        @inline(__always) func put(_ v: Int, _ s: _Wide, _ q: _Wide) {
            _storeWide(s, p1 + v * _wideLanes); _storeWide(q, p2 + v * _wideLanes)
        }
        put(0, s.0, q.0); put(1, s.1, q.1); put(2, s.2, q.2); put(3, s.3, q.3)
        put(4, s.4, q.4); put(5, s.5, q.5); put(6, s.6, q.6); put(7, s.7, q.7)
        put(8, s.8, q.8); put(9, s.9, q.9); put(10, s.10, q.10); put(11, s.11, q.11)
        put(12, s.12, q.12); put(13, s.13, q.13); put(14, s.14, q.14); put(15, s.15, q.15)
    }

    /// `(N, C, L)`, L > 1: each (sample, feature) is a contiguous run of L
    /// values, vectorised along the run (four accumulator pairs) and folded
    /// into Double per run block. Adds the sums of `samples` into sum1, sum2.
    @inlinable
    static func _reduceRuns<T: _PairTerms>(_: T.Type, _ a: _PairArrays, samples: Range<Int>, c: Int, l: Int) {
        let x = a.x, dy = a.dy, shift = a.shift, sum1 = a.sum1, sum2 = a.sum2
        let blockLength = _rowsPerBlock * _lanes
        for sample in samples.reversed() {
            for feature in 0..<c {
                let run = (sample * c + feature) * l
                let xr = x + run, dr = dy + run
                let k = _Vector(repeating: shift[feature])
                let fa = a.scale[feature], fb = a.bias[feature]
                let ka = _Vector(repeating: fa), kb = _Vector(repeating: fb)
                var start = 0
                while start < l {
                    let end = min(l, start + blockLength)
                    var a1 = _Vector(), a2 = _Vector(), b1 = _Vector(), b2 = _Vector()
                    var c1 = _Vector(), c2 = _Vector(), d1 = _Vector(), d2 = _Vector()
                    var i = start
                    while i + 4 * _lanes <= end {
                        T.accumulate(d: _load(xr + i) - k, dy: _load(dr + i), scale: ka, bias: kb, &a1, &a2)
                        T.accumulate(d: _load(xr + i + 8) - k, dy: _load(dr + i + 8), scale: ka, bias: kb, &b1, &b2)
                        T.accumulate(d: _load(xr + i + 16) - k, dy: _load(dr + i + 16), scale: ka, bias: kb, &c1, &c2)
                        T.accumulate(d: _load(xr + i + 24) - k, dy: _load(dr + i + 24), scale: ka, bias: kb, &d1, &d2)
                        i += 4 * _lanes
                    }
                    while i + _lanes <= end {
                        T.accumulate(d: _load(xr + i) - k, dy: _load(dr + i), scale: ka, bias: kb, &a1, &a2)
                        i += _lanes
                    }
                    var r1 = _sumLanes((a1 + b1) + (c1 + d1)), r2 = _sumLanes((a2 + b2) + (c2 + d2))
                    while i < end {
                        let (t1, t2) = T.terms(d: xr[i] - shift[feature], dy: dr[i], scale: fa, bias: fb)
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
