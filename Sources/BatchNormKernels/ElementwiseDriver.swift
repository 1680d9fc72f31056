import CBatchNormKitIntrinsics
import KernelSupport

// MARK: - The elementwise pass driver
//
// `normalizeAffine` and `backwardInput` are both out = f(inputs, per-feature
// constants) over an `(N, C, L)` batch. The driver owns the loops: for
// `(N, C)` rows, up to four rows per load of the constants
// (``BatchNormKernel/_rowGroup(c:rows:streams:maximum:)``) or, with
// streaming stores, one row at a time (each aligns its own stores); for
// `(N, C, L)`, each feature's run of L values with broadcast constants; the
// split of the samples over threads. A term type holds only the math.

/// The math of one elementwise pass: per-feature constants and the output
/// they give at an element.
@usableFromInline protocol _ElementwiseTerms {
    associatedtype Constants
    /// Arrays read per element plus the output (for the row grouping).
    static var streams: Int { get }
    /// Where the pass writes.
    var output: UnsafeMutablePointer<Float> { get }
    /// The constants of features j…j+7, as vectors.
    func constants(column j: Int) -> Constants
    /// The constants of one feature, broadcast to every lane (runs).
    func constants(feature f: Int) -> Constants
    /// The output vector of the 8 elements from flat index `o`.
    func vector(_ k: Constants, at o: Int) -> _Vector
    /// The output of element `o` of feature `f`, scalar.
    func scalar(feature f: Int, at o: Int) -> Float
}

extension BatchNormKernel {
    /// The whole pass: on this thread, or split over the kernels' pool as
    /// the `parallel` case of ``_ElementwisePass``.
    @inlinable @inline(__always)
    static func _elementwise<T: _ElementwiseTerms>(
        _ terms: T, shape: BatchNormShape, parallel: (T) -> _ElementwisePass
    ) {
        let parts = _threadParts(shape), streaming = _streams(values: shape.elementCount, arrays: T.streams)
        if parts > 1 {
            _elementwiseParallel(parallel(terms), shape: shape, streaming: streaming, parts: parts)
        } else {
            _elementwiseSamples(terms, shape: shape, samples: 0..<shape.n, streaming: streaming)
        }
    }

    /// Samples `samples` (all of the batch, or one thread's share).
    @inlinable
    static func _elementwiseSamples<T: _ElementwiseTerms>(
        _ terms: T, shape: BatchNormShape, samples: Range<Int>, streaming: Bool
    ) {
        if shape.l == 1 {
            _elementwiseRows(terms, rows: samples, batchRows: shape.n, c: shape.c, streaming: streaming)
        } else {
            _elementwiseRuns(terms, samples: samples, c: shape.c, l: shape.l, streaming: streaming)
        }
        if streaming { bnk_stream_fence() }   // each thread fences its own stores
    }

    /// `(N, C)`, rows `rows` of a batch of `batchRows`; with `streaming` the
    /// caller fences (as for the runs). Streaming spans under 64 values use
    /// normal stores (see ``_streamHead``).
    @inlinable
    static func _elementwiseRows<T: _ElementwiseTerms>(
        _ terms: T, rows: Range<Int>, batchRows: Int, c: Int, streaming: Bool
    ) {
        if streaming && c >= 64 {
            // one row at a time: each row aligns its streaming stores on its own
            // (written out: a helper taking closures that captured the terms
            // ran the GroupNorm and dx passes slower; Benchmarks/README.md)
            for row in rows {
                let first = row * c, out = terms.output + first
                let head = _streamHead(out)
                var j = 0
                while j < head { out[j] = terms.scalar(feature: j, at: first &+ j); j &+= 1 }
                while j + _lanes <= c {
                    bnk_stream_store8(out + j, terms.vector(terms.constants(column: j), at: first &+ j))
                    j &+= _lanes
                }
                while j < c { out[j] = terms.scalar(feature: j, at: first &+ j); j &+= 1 }
            }
            return
        }
        var row = rows.lowerBound
        switch _rowGroup(c: c, rows: batchRows, streams: T.streams, maximum: 4) {
        case 4:
            while row + 4 <= rows.upperBound { _elementwiseGroup(terms, first: row * c, c: c, rows: 4); row += 4 }
        case 2:
            while row + 2 <= rows.upperBound { _elementwiseGroup(terms, first: row * c, c: c, rows: 2); row += 2 }
        default:
            break
        }
        while row < rows.upperBound { _elementwiseGroup(terms, first: row * c, c: c, rows: 1); row += 1 }
    }

    /// `rows` consecutive rows from flat index `first` (a constant after
    /// inlining), one load of the constants per vector of features.
    @inlinable @inline(__always)
    static func _elementwiseGroup<T: _ElementwiseTerms>(_ terms: T, first: Int, c: Int, rows: Int) {
        let out = terms.output + first
        let vectorEnd = c - c % _lanes
        // Wrapping index arithmetic: every index lies inside the batch, and
        // checked `+`/`*` here put an overflow branch and a register spill on
        // every vector (`perf annotate`: the (256, 256) normalize ran ~10 %
        // slower than the hand-written loop it replaced).
        var j = 0
        while j < vectorEnd {
            let k = terms.constants(column: j)
            for r in 0..<rows {
                let o = r &* c &+ j
                _store(terms.vector(k, at: first &+ o), out + o)
            }
            j &+= _lanes
        }
        while j < c {
            for r in 0..<rows { let o = r &* c &+ j; out[o] = terms.scalar(feature: j, at: first &+ o) }
            j &+= 1
        }
    }

    /// `(N, C, L)`, L > 1, samples `samples`: each feature's run of L values.
    @inlinable
    static func _elementwiseRuns<T: _ElementwiseTerms>(
        _ terms: T, samples: Range<Int>, c: Int, l: Int, streaming: Bool
    ) {
        for sample in samples {
            for feature in 0..<c {
                let run = (sample * c + feature) * l
                let k = terms.constants(feature: feature), out = terms.output + run
                if streaming && l >= 64 {
                    // as the rows
                    let head = _streamHead(out)
                    var i = 0
                    while i < head { out[i] = terms.scalar(feature: feature, at: run &+ i); i &+= 1 }
                    while i + _lanes <= l { bnk_stream_store8(out + i, terms.vector(k, at: run &+ i)); i &+= _lanes }
                    while i < l { out[i] = terms.scalar(feature: feature, at: run &+ i); i &+= 1 }
                    continue
                }
                var i = 0
                while i + 2 * _lanes <= l {
                    let v0 = terms.vector(k, at: run &+ i), v1 = terms.vector(k, at: run &+ i &+ _lanes)
                    _store(v0, out + i); _store(v1, out + i + _lanes)
                    i &+= 2 &* _lanes
                }
                while i + _lanes <= l { _store(terms.vector(k, at: run &+ i), out + i); i &+= _lanes }
                while i < l { out[i] = terms.scalar(feature: feature, at: run &+ i); i &+= 1 }
            }
        }
    }
}

/// The passes that split over the pool, one case per term type: a part
/// switches on it to run the pass specialised for its terms (a C function
/// pointer cannot be generic; a generic entry called across modules would
/// run unspecialised).
@usableFromInline enum _ElementwisePass {
    case normalize(_NormalizeTerms)
    case normalizeReLU(_ReLUClampedTerms<_NormalizeTerms>)
    case gradInput(_GradInputTerms)
    case gradInputReLU(_GradInputReLUTerms)
}

/// An elementwise pass's share of a split batch, on the caller's stack.
struct _ElementwiseJob {
    var pass: _ElementwisePass
    var shape: BatchNormShape
    var streaming: Bool
    var parts: Int

    func run(part: Int) {
        let samples = _partRange(part, of: parts, shape.n)
        switch pass {
        case .normalize(let terms):
            BatchNormKernel._elementwiseSamples(terms, shape: shape, samples: samples, streaming: streaming)
        case .normalizeReLU(let terms):
            BatchNormKernel._elementwiseSamples(terms, shape: shape, samples: samples, streaming: streaming)
        case .gradInput(let terms):
            BatchNormKernel._elementwiseSamples(terms, shape: shape, samples: samples, streaming: streaming)
        case .gradInputReLU(let terms):
            BatchNormKernel._elementwiseSamples(terms, shape: shape, samples: samples, streaming: streaming)
        }
    }
}
