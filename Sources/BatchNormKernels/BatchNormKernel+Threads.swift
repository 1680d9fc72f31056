// MARK: - Threading for large batches
//
// A second core adds memory bandwidth on this kind of machine (`bnkbench
// --probe-threads`; Benchmarks/README.md), and BatchNorm on large batches is bandwidth-bound. So a
// kernel call on a batch of at least ``BatchNormKernel/parallelThreshold``
// values splits its rows (samples for `(N, C, L)`) into ``BatchNormKernel/threadCount``
// contiguous parts: the calling thread runs part 0, persistent worker
// threads (created on first use) the others. Smaller batches never leave the
// calling thread: waking a worker costs microseconds, more than a whole
// (256, 256) pass. (`DispatchQueue.concurrentPerform` would do the same, but
// allocates a few blocks per call; this pool allocates nothing after start.)
//
// The reductions give each part its own Float32 block sums and Double
// partial sums, in one workspace allocated once and grown only for a wider
// batch (no allocation per call), then add the partials in part order. All
// parts subtract the same per-feature shift, so their sums add exactly
// like the blocks of one thread (no Chan merge needed); results are
// deterministic for a given thread count and can differ from the
// single-thread ones in the last bits.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension BatchNormKernel {
    /// Threads a kernel call may use on a large batch (default 1: the
    /// calling thread only). Process-wide; set it before running, not while
    /// kernels run on other threads.
    public static var threadCount: Int {
        get { _threading.threads }
        set {
            precondition(newValue >= 1, "BatchNormKernel.threadCount must be ≥ 1")
            _threading.threads = newValue
        }
    }

    /// Values (N·C·L) from which a call is split across ``threadCount``
    /// threads (default 2¹⁹ = 2 MB of Float32). Below it a thread handoff
    /// costs more than it saves.
    public static var parallelThreshold: Int {
        get { _threading.threshold }
        set {
            precondition(newValue >= 1, "BatchNormKernel.parallelThreshold must be ≥ 1")
            _threading.threshold = newValue
        }
    }

    /// How many parts a call on `shape` runs in (1: the calling thread only).
    @inlinable
    package static func _threadParts(_ shape: BatchNormShape) -> Int {
        BatchNormKernels._threadParts(values: shape.elementCount, samples: shape.n)
    }

    /// The share `part` of `parts` owns of `n` items (rows, samples, a
    /// batch's samples over ranks): contiguous, in order, sizes differing by
    /// at most one. The one partition of the package (kernels, Trainer, bench).
    @inlinable @inline(__always)
    package static func _partRange(_ part: Int, of parts: Int, _ n: Int) -> Range<Int> {
        (n * part / parts)..<(n * (part + 1) / parts)
    }

    /// `body(0)` on this thread and `body(1)` … `body(parts − 1)` on the
    /// kernels' workers, returning when all are done; all on this thread
    /// while another call holds the pool. The process's one worker pool,
    /// lent to the bench's bandwidth probes.
    package static func _runParts(_ parts: Int, _ body: (Int) -> Void) {
        if parts > 1 && _tryRunParts(parts, workspaceBytes: 0, { part, _ in body(part) }) { return }
        for part in 0..<max(parts, 1) { body(part) }
    }

    /// `body(part, workspace)` for parts 0 … parts − 1 on the pool (part 0 on
    /// this thread), with the pool's workspace of at least `workspaceBytes`,
    /// then `combine(workspace)` on this thread while the pool is still held;
    /// false, running nothing, while another call holds the pool.
    @usableFromInline
    static func _tryRunParts(_ parts: Int, workspaceBytes: Int,
                             _ body: (Int, UnsafeMutableRawPointer) -> Void,
                             combine: (UnsafeMutableRawPointer) -> Void = { _ in }) -> Bool {
        guard let workspace = _threading.acquire(bytes: workspaceBytes) else { return false }
        defer { _threading.release() }
        typealias Job = (body: (Int, UnsafeMutableRawPointer) -> Void, workspace: UnsafeMutableRawPointer)
        withoutActuallyEscaping(body) { body in
            var job: Job = (body, workspace)
            withUnsafeMutablePointer(to: &job) { p in
                _threading.run(parts: parts, task: { raw, part in
                    let job = raw.assumingMemoryBound(to: Job.self).pointee
                    job.body(part, job.workspace)
                }, context: UnsafeMutableRawPointer(p))
            }
        }
        combine(workspace)
        return true
    }

    // MARK: Reductions

    /// sum1, sum2 (zeroed by the caller) += the sums over the whole batch,
    /// its samples split in `parts`; each extra part sums into its own
    /// ``_partSums(_:part:c:)``, added in part order.
    static func _reduceSplit<T: _PairTerms>(
        _: T.Type, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, shape: BatchNormShape,
        shift: UnsafePointer<Float>, sum1: UnsafeMutablePointer<Double>, sum2: UnsafeMutablePointer<Double>,
        scratch: UnsafeMutablePointer<Float>, parts: Int
    ) {
        let c = shape.c
        if _tryRunParts(parts, workspaceBytes: (parts - 1) * _partSumsBytes(c: c), { part, workspace in
            var s1 = sum1, s2 = sum2, blockSums = scratch
            if part > 0 {
                (s1, blockSums) = _partSums(workspace, part: part, c: c)
                s2 = s1 + c
                s1.update(repeating: 0, count: 2 * c)
            }
            _reduceSamples(T.self, x: x, dy: dy, shape: shape, samples: _partRange(part, of: parts, shape.n),
                           shift: shift, sum1: s1, sum2: s2, scratch: blockSums)
        }, combine: { _addPartSums($0, parts: parts, c: c, into: sum1, sum2) }) { return }
        // another thread's call holds the pool: all on this thread
        _reduceSamples(T.self, x: x, dy: dy, shape: shape, samples: 0..<shape.n, shift: shift,
                       sum1: sum1, sum2: sum2, scratch: scratch)
    }

    /// Bytes of one extra part's sums in a split reduction's workspace:
    /// Double totals `[2C]`, then Float32 block sums `[2C]`.
    @inlinable @inline(__always)
    static func _partSumsBytes(c: Int) -> Int { c * (2 * 8 + 2 * 4) }

    /// Part `part`'s (≥ 1) Double totals `[2C]` and Float32 block sums `[2C]`.
    @inlinable @inline(__always)
    static func _partSums(_ workspace: UnsafeMutableRawPointer, part: Int, c: Int)
        -> (totals: UnsafeMutablePointer<Double>, blockSums: UnsafeMutablePointer<Float>) {
        let totals = (workspace + (part - 1) * _partSumsBytes(c: c)).assumingMemoryBound(to: Double.self)
        return (totals, UnsafeMutableRawPointer(totals + 2 * c).assumingMemoryBound(to: Float.self))
    }

    /// first[j] += each extra part's totals[j], second[j] += its totals[C + j],
    /// in part order.
    @usableFromInline
    static func _addPartSums(_ workspace: UnsafeMutableRawPointer, parts: Int, c: Int,
                             into first: UnsafeMutablePointer<Double>, _ second: UnsafeMutablePointer<Double>) {
        for part in 1..<parts {
            let p = _partSums(workspace, part: part, c: c).totals
            for j in 0..<c { first[j] += p[j] }
            for j in 0..<c { second[j] += p[c + j] }
        }
    }

    // MARK: Elementwise passes

    /// An elementwise pass with its samples split in `parts`, or all on this
    /// thread while another call holds the pool.
    static func _elementwiseSplit<T: _ElementwiseTerms>(_ terms: T, shape: BatchNormShape, streaming: Bool, parts: Int) {
        if _tryRunParts(parts, workspaceBytes: 0, { part, _ in
            _elementwiseSamples(terms, shape: shape, samples: _partRange(part, of: parts, shape.n), streaming: streaming)
        }) { return }
        _elementwiseSamples(terms, shape: shape, samples: 0..<shape.n, streaming: streaming)
    }
}

/// One part of a parallel call: (job, part index). A C function pointer, so
/// handing it to a worker retains and allocates nothing.
typealias _KernelTask = @convention(c) (UnsafeMutableRawPointer, Int) -> Void

/// The kernels' thread settings, their worker threads and the reductions'
/// workspace. One parallel call at a time: ``acquire(bytes:)`` fails (and
/// the caller runs single-threaded) while another call holds the pool.
@usableFromInline
final class _KernelThreading: @unchecked Sendable {
    @usableFromInline var threads = 1
    @usableFromInline var threshold = 1 << 19

    private let busy: UnsafeMutablePointer<pthread_mutex_t>      // held for a whole parallel call
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>     // guards the fields below
    private let workReady: UnsafeMutablePointer<pthread_cond_t>
    private let workDone: UnsafeMutablePointer<pthread_cond_t>
    private var workspace: UnsafeMutableRawPointer? = nil
    private var capacity = 0
    private var workers = 0
    private var generation = 0
    private var parts = 0
    private var remaining = 0
    private var task: _KernelTask? = nil
    private var context = UnsafeMutableRawPointer(bitPattern: 64)!

    init() {
        busy = .allocate(capacity: 1); busy.initialize(to: pthread_mutex_t()); pthread_mutex_init(busy, nil)
        mutex = .allocate(capacity: 1); mutex.initialize(to: pthread_mutex_t()); pthread_mutex_init(mutex, nil)
        workReady = .allocate(capacity: 1); workReady.initialize(to: pthread_cond_t()); pthread_cond_init(workReady, nil)
        workDone = .allocate(capacity: 1); workDone.initialize(to: pthread_cond_t()); pthread_cond_init(workDone, nil)
    }

    /// Holds the pool for one parallel call and returns a workspace of at
    /// least `bytes`, or nil when another call holds it. Allocates only to grow.
    func acquire(bytes: Int) -> UnsafeMutableRawPointer? {
        guard pthread_mutex_trylock(busy) == 0 else { return nil }
        if capacity < max(bytes, 64) {
            workspace?.deallocate()
            capacity = max(bytes, 64)
            workspace = .allocate(byteCount: capacity, alignment: 64)
        }
        return workspace
    }

    func release() { pthread_mutex_unlock(busy) }

    /// Runs `task(context, 0)` on this thread and parts 1 … parts − 1 on
    /// workers, returning when all are done. Call between acquire and release.
    func run(parts: Int, task: _KernelTask, context: UnsafeMutableRawPointer) {
        startWorkers(parts - 1)
        pthread_mutex_lock(mutex)
        self.task = task
        self.context = context
        self.parts = min(parts, workers + 1)
        remaining = self.parts - 1
        generation &+= 1
        pthread_cond_broadcast(workReady)
        pthread_mutex_unlock(mutex)

        task(context, 0)
        // parts without a worker (thread creation failed): run them here
        for part in self.parts..<max(parts, self.parts) { task(context, part) }

        pthread_mutex_lock(mutex)
        while remaining > 0 { pthread_cond_wait(workDone, mutex) }
        pthread_mutex_unlock(mutex)
    }

    private func startWorkers(_ count: Int) {
        while workers < count {
            let index = workers
            let context = UnsafeMutablePointer<(Unmanaged<_KernelThreading>, Int)>.allocate(capacity: 1)
            context.initialize(to: (Unmanaged.passRetained(self), index + 1))
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { raw in
                let context = raw!.assumingMemoryBound(to: (Unmanaged<_KernelThreading>, Int).self)
                let (pool, part) = context.pointee
                context.deallocate()
                pool.takeUnretainedValue().workerLoop(part: part)
            }, context)
            guard started == 0 else {
                context.pointee.0.release()
                context.deallocate()
                break
            }
            pthread_detach(thread)
            workers += 1
        }
    }

    private func workerLoop(part: Int) -> Never {
        var seen = 0
        pthread_mutex_lock(mutex)
        while true {
            while generation == seen { pthread_cond_wait(workReady, mutex) }
            seen = generation
            guard part < parts, let task else { continue }
            let context = self.context
            pthread_mutex_unlock(mutex)
            task(context, part)
            pthread_mutex_lock(mutex)
            remaining -= 1
            if remaining == 0 { pthread_cond_signal(workDone) }
        }
    }
}

@usableFromInline let _threading = _KernelThreading()
