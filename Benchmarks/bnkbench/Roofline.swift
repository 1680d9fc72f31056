// This machine's limits, measured in the same run as the cases: streaming
// bandwidth with simple SIMD loops at a case's working-set size (writes with
// normal or non-temporal stores, whichever is faster there), and plain
// cblas_sgemm on a case's matrix shapes.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKernels
import KernelSupport
import BatchNormKit
import CBatchNormKitBLAS
import CBatchNormKitIntrinsics

/// What a case is compared with: the fastest it could possibly run.
struct Limit {
    /// Short name for the table, e.g. "R+RW 2.0MB" or "sgemm".
    var kind: String
    /// The lower bound on the case's time, seconds.
    var boundTime: Double
    /// Measured figures behind the bound, for the JSON (GB/s, GFLOP/s, seconds).
    var details: [(String, Double)]
}

/// The memory loops a bound is built from.
enum StreamKind: String {
    /// Σ over one buffer of `bytes` bytes (4 independent SIMD accumulators).
    case read
    /// y = a·x + b: reads bytes/2, writes bytes/2 (normal stores: the write
    /// includes the read-for-ownership a kernel's stores also pay).
    case readWrite = "read+write"
    /// y = a·x + z: reads 2·bytes/3, writes bytes/3 (backwardInput's pattern).
    case read2Write = "2read+write"
}

/// Streaming-bandwidth probes, cached per (kind, working set, threads).
final class Roofline {
    private var cache: [String: Double] = [:]
    /// Keys measured in the current round (see ``newRound()``).
    private var fresh: Set<String> = []
    var policy: RepeatPolicy

    /// With --rounds: measure every limit again once per round and keep the
    /// best figure, as the cases keep their best median.
    func newRound() { fresh.removeAll() }

    /// While set, every figure is measured anew and neither read from nor
    /// kept in the cache: the bound of this moment, for a case's paired
    /// measurement (``Bench/pairedPercent(fast:limit:pattern:)``).
    var live = false

    /// The cached figure when measured this round; else measures it and keeps
    /// the better of the new and any earlier figure. With ``live``, a new measurement.
    private func cached(_ key: String, higherIsBetter: Bool, _ measureIt: () -> Double) -> Double {
        if live { return measureIt() }
        if let v = cache[key], fresh.contains(key) { return v }
        let v = measureIt()
        let best = cache[key].map { higherIsBetter ? max($0, v) : min($0, v) } ?? v
        cache[key] = best
        fresh.insert(key)
        return best
    }

    init(policy: RepeatPolicy) { self.policy = policy }

    /// Threads the streaming probes use (set per case: the kernels' thread
    /// count when they split that case's batch, else 1).
    var streamThreads = 1

    /// GB/s (bytes moved per second, reads plus writes) of `kind` over a
    /// working set of `bytes` bytes, warm: the same buffers every run, so a
    /// working set that fits a cache level is measured in that level. With
    /// ``streamThreads`` > 1 each thread streams its own contiguous share.
    func bandwidth(_ kind: StreamKind, bytes: Int) -> Double {
        let threads = streamThreads
        let key = "\(kind.rawValue)/\(bytes)/\(threads)"
        return cached(key, higherIsBetter: true) { measureBandwidth(kind, bytes: bytes, threads: threads) }
    }

    private func measureBandwidth(_ kind: StreamKind, bytes: Int, threads: Int) -> Double {
        let floats = max(64, bytes / 4) & ~31
        func share(_ n: Int, _ part: Int) -> Range<Int> { Roofline.share(n, part, of: threads) }
        let t: Timing
        switch kind {
        case .read:
            let a = FloatBuffer(count: floats, fill: 1)
            t = measure(policy) {
                BatchNormKernel._runParts(threads) { part in
                    let r = share(floats, part)
                    blackHole(_streamRead(a.pointer + r.lowerBound, r.count))
                }
            }
        case .readWrite:
            // the better of normal and streaming (non-temporal) stores: the
            // kernels stream large outputs, so the bound must allow it too
            let half = floats / 2 & ~31
            let a = FloatBuffer(count: half, fill: 1), b = FloatBuffer(count: half)
            t = [false, true].map { streaming in
                measure(policy) {
                    BatchNormKernel._runParts(threads) { part in
                        let r = share(half, part)
                        _streamScale(a.pointer + r.lowerBound, b.pointer + r.lowerBound, r.count, streaming: streaming)
                    }
                    blackHole(b.pointer, half)
                }
            }.min { $0.median < $1.median }!
        case .read2Write:
            let third = floats / 3 & ~31
            let a = FloatBuffer(count: third, fill: 1), b = FloatBuffer(count: third, fill: 2)
            let c = FloatBuffer(count: third)
            t = [false, true].map { streaming in
                measure(policy) {
                    BatchNormKernel._runParts(threads) { part in
                        let r = share(third, part)
                        _streamTriad(a.pointer + r.lowerBound, b.pointer + r.lowerBound, c.pointer + r.lowerBound, r.count,
                                     streaming: streaming)
                    }
                    blackHole(c.pointer, third)
                }
            }.min { $0.median < $1.median }!
        }
        let moved: Double
        switch kind {
        case .read: moved = Double(floats * 4)
        case .readWrite: moved = Double((floats / 2 & ~31) * 8)
        case .read2Write: moved = Double((floats / 3 & ~31) * 12)
        }
        return moved / t.median / 1e9
    }

    /// Part `part`'s share of `n` floats split `parts` ways, in whole
    /// 32-float (128-byte) blocks; the last part takes the tail.
    static func share(_ n: Int, _ part: Int, of parts: Int) -> Range<Int> {
        let blocks = _partRange(part, of: parts, n / 32)
        return (blocks.lowerBound * 32)..<(part == parts - 1 ? n : blocks.upperBound * 32)
    }

    /// How the bounds name a product on the backend in force: "sgemm"
    /// (OpenBLAS) or "gemm simd16" (MatrixKernel).
    var productName: String {
        MatrixMultiplication.backend == .openBLAS ? "sgemm" : "gemm \(MatrixMultiplication.backend.rawValue)"
    }

    /// Median seconds of one plain matrix product, C = op(A)op(B) + βC,
    /// row-major, on the library's backend in force
    /// (`MatrixMultiplication.backend`: the products of the layer cases'
    /// bounds), or on OpenBLAS's sgemm when `openBLAS` (the `kernel.gemm.*`
    /// cases' comparison).
    func sgemmTime(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, beta: Float, openBLAS: Bool = false) -> Double {
        let backend = openBLAS ? MatrixBackend.openBLAS : MatrixMultiplication.backend
        let key = "gemm/\(backend)/\(transA)/\(transB)/\(m)/\(n)/\(k)/\(beta)/\(bnk_blas_get_num_threads())/\(BatchNormKernel.threadCount)"
        return cached(key, higherIsBetter: false) {
            measureProduct(backend, transA: transA, transB: transB, m: m, n: n, k: k, beta: beta)
        }
    }

    private func measureProduct(_ backend: MatrixBackend, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, beta: Float) -> Double {
        let a = FloatBuffer(count: m * k, fill: 0.5), b = FloatBuffer(count: k * n, fill: 0.25)
        let c = FloatBuffer(count: m * n)
        let lda = transA ? m : k, ldb = transB ? k : n
        let t = measure(policy) {
            MatrixMultiplication._withBackend(backend) {
                MatrixMultiplication._multiply(transposeA: transA, transposeB: transB, m: m, n: n, k: k,
                                               a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                                               accumulate: beta != 0, c: c.pointer, ldc: n)
            }
            blackHole(c.pointer, m * n)
        }
        return t.median
    }

    // MARK: A case's memory pattern

    /// Buffers of the pattern probes, kept per size (a 16 MB buffer
    /// allocated per measurement would time its page faults).
    private var patternBuffers: [Int: [FloatBuffer]] = [:]

    /// Median seconds of `passes` run in order with the simplest loops over
    /// arrays of `tensorBytes` each (``_streamPass``): the same bytes in the
    /// same order as the case's passes, without their arithmetic. Each pass
    /// is split over ``streamThreads`` like the probes; a writing pass uses
    /// streaming stores where the kernels would for its arrays
    /// (``BatchNormKernel/streamingThreshold``, stated for two).
    /// Not cached: measured anew at every call (the paired measurements).
    func patternTime(_ passes: [(reads: Int, writes: Bool)], tensorBytes: Int) -> Double {
        let floats = max(64, tensorBytes / 4) & ~31, threads = streamThreads
        let buffers = patternBuffers[floats] ?? (0..<4).map { FloatBuffer(count: floats, fill: Float($0 + 1) * 0.25) }
        patternBuffers[floats] = buffers
        let t = measure(policy) {
            for pass in passes {
                BatchNormKernel._runParts(threads) { part in
                    let r = Roofline.share(floats, part, of: threads), at = r.lowerBound
                    let streaming = floats * (pass.reads + 1) >= 2 * BatchNormKernel.streamingThreshold
                    blackHole(_streamPass(reads: pass.reads, buffers[0].pointer + at, buffers[1].pointer + at,
                                          buffers[2].pointer + at, pass.writes ? buffers[3].pointer + at : nil, r.count,
                                          streaming: streaming))
                }
            }
        }
        return t.median
    }

    /// BatchNorm's passes: statistics (read x), normalize (read x, write y).
    static let forwardTrainPasses = [(reads: 1, writes: false), (reads: 1, writes: true)]
    /// Eval: normalize only.
    static let forwardEvalPasses = [(reads: 1, writes: true)]
    /// Backward: the sums (read dy, x), dx (read dy, x, write dx) — behind
    /// a fused ReLU too (the mask comes from x).
    static let backwardPasses = [(reads: 2, writes: false), (reads: 2, writes: true)]

    // MARK: Bounds for the BatchNorm cases (S = bytes of one (N, C, L) tensor)

    private var threadTag: String { streamThreads > 1 ? " ×\(streamThreads)T" : "" }

    /// Training forward: statistics read x (S), normalize reads x and writes y (2S).
    func forwardTrainBound(tensorBytes s: Int) -> Limit {
        let ws = 2 * s
        let r = bandwidth(.read, bytes: ws), rw = bandwidth(.readWrite, bytes: ws)
        let bound = Double(s) / (r * 1e9) + Double(2 * s) / (rw * 1e9)
        return Limit(kind: "R+RW \(formatBytes(ws))\(threadTag)", boundTime: bound,
                     details: [("working_set_bytes", Double(ws)), ("read_GBps", r), ("read_write_GBps", rw)])
    }

    /// Eval forward: read x, write y (2S).
    func forwardEvalBound(tensorBytes s: Int) -> Limit {
        let ws = 2 * s
        let rw = bandwidth(.readWrite, bytes: ws)
        return Limit(kind: "RW \(formatBytes(ws))\(threadTag)", boundTime: Double(ws) / (rw * 1e9),
                     details: [("working_set_bytes", Double(ws)), ("read_write_GBps", rw)])
    }

    /// Backward: the reduction reads dy and x (2S); dx reads both again and writes dx (3S).
    func backwardBound(tensorBytes s: Int) -> Limit {
        let ws = 3 * s
        let r = bandwidth(.read, bytes: ws), rw = bandwidth(.read2Write, bytes: ws)
        let bound = Double(2 * s) / (r * 1e9) + Double(3 * s) / (rw * 1e9)
        return Limit(kind: "R+2RW \(formatBytes(ws))\(threadTag)", boundTime: bound,
                     details: [("working_set_bytes", Double(ws)), ("read_GBps", r), ("read2_write_GBps", rw)])
    }
}
