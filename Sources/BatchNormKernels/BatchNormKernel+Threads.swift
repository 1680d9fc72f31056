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

import CBatchNormKitIntrinsics
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
    /// threads (default: the running machine's L2 size in values,
    /// ``KernelTuning/derived(from:)``). Below it a thread handoff costs
    /// more than it saves.
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
    /// kernels' workers, returning when all are done. The process's one
    /// worker pool, lent to the bench's bandwidth probes; the closure's
    /// context is allocated per call (the kernels themselves go through job
    /// structs and a C function pointer).
    package static func _runParts(_ parts: Int, _ body: (Int) -> Void) {
        guard parts > 1 else { body(0); return }
        _ = _threading.acquire(bytes: 0)
        defer { _threading.release() }
        typealias Job = (Int) -> Void
        withoutActuallyEscaping(body) { body in
            var job: Job = body
            _threading.run(&job, parts: parts) { raw, part in
                raw.assumingMemoryBound(to: Job.self).pointee(part)
            }
        }
    }

    // MARK: Reductions

    /// a.sum1, a.sum2 (zeroed by the caller) += the `kind` sums over the
    /// whole batch, split into `parts`: each extra part sums into its own
    /// slice of the pool's workspace, added in part order.
    @usableFromInline
    static func _reduceParallel(_ kind: _PairKind, _ a: _PairArrays, shape: BatchNormShape, parts: Int) {
        let c = shape.c
        // per extra part: Double partial sums [2C], then Float32 block sums [2C]
        var job = _ReduceJob(arrays: a, shape: shape, partBytes: c * (2 * 8 + 2 * 4), parts: parts)
        job.workspace = _threading.acquire(bytes: (parts - 1) * job.partBytes)
        defer { _threading.release() }
        // one C task per term type: each runs its own specialised pass
        let task: _KernelTask
        switch kind {
        case .moments: task = { raw, part in raw.assumingMemoryBound(to: _ReduceJob.self).pointee.run(_MomentTerms.self, part: part) }
        case .grad: task = { raw, part in raw.assumingMemoryBound(to: _ReduceJob.self).pointee.run(_GradTerms.self, part: part) }
        case .gradReLU: task = { raw, part in raw.assumingMemoryBound(to: _ReduceJob.self).pointee.run(_GradReLUTerms.self, part: part) }
        }
        _threading.run(&job, parts: parts, task: task)
        for part in 1..<parts {
            let p = job.partials(part)
            for j in 0..<c { a.sum1[j] += p[j] }
            for j in 0..<c { a.sum2[j] += p[c + j] }
        }
    }

    // MARK: Elementwise passes

    /// Runs `pass` split into `parts` on the pool.
    @usableFromInline
    static func _elementwiseParallel(_ pass: _ElementwisePass, shape: BatchNormShape, streaming: Bool, parts: Int) {
        var job = _ElementwiseJob(pass: pass, shape: shape, streaming: streaming, parts: parts)
        _ = _threading.acquire(bytes: 0)
        defer { _threading.release() }
        _threading.run(&job, parts: parts) { raw, part in
            raw.assumingMemoryBound(to: _ElementwiseJob.self).pointee.run(part: part)
        }
    }
}

/// One part of a parallel call: (job, part index). A C function pointer, so
/// handing it to a worker retains and allocates nothing.
package typealias _KernelTask = @convention(c) (UnsafeMutableRawPointer, Int) -> Void

/// The arguments of a parallel reduction, on the caller's stack.
struct _ReduceJob {
    var arrays: _PairArrays
    var shape: BatchNormShape
    var partBytes: Int
    var parts: Int
    var workspace = UnsafeMutableRawPointer(bitPattern: 64)!

    /// Part `part`'s Double partial sums `[2C]` (part ≥ 1), followed by its block sums.
    func partials(_ part: Int) -> UnsafeMutablePointer<Double> {
        (workspace + (part - 1) * partBytes).assumingMemoryBound(to: Double.self)
    }

    /// Part `part`'s samples: part 0 into the caller's sums, the others into
    /// their own (zeroed) partials.
    func run<T: _PairTerms>(_: T.Type, part: Int) {
        let c = shape.c
        var a = arrays
        if part > 0 {
            a.sum1 = partials(part); a.sum2 = a.sum1 + c
            a.scratch = UnsafeMutableRawPointer(a.sum1 + 2 * c).assumingMemoryBound(to: Float.self)
            a.sum1.update(repeating: 0, count: 2 * c)
        }
        BatchNormKernel._reduceSamples(T.self, a, shape: shape, samples: BatchNormKernel._partRange(part, of: parts, shape.n))
    }
}

/// The kernels' thread settings, their worker threads and the reductions'
/// workspace. One parallel call at a time: ``acquire(bytes:)`` waits while
/// another thread's call holds the pool, so a call always runs in the parts
/// its thread count gives and its sums come out the same whatever else runs
/// (falling back to one part when the pool was busy made dγ, dβ and the
/// moments depend on timing in their last bits).
@usableFromInline
package final class _KernelThreading: @unchecked Sendable {
    @usableFromInline package var threads = 1
    @usableFromInline var threshold = KernelTuning.machine.parallelThreshold

    private let busy = _Monitor(conditions: 0)      // held for a whole parallel call
    private let monitor = _Monitor(conditions: 2)   // guards the fields below
    private let workReady = 0, workDone = 1         // monitor's conditions
    private var workspace: UnsafeMutableRawPointer? = nil
    private var capacity = 0
    private var workers = 0
    /// [0] the generation (bumped per parallel call), [1] parts still
    /// running: written under `monitor` with release stores, polled without it.
    private let counters: UnsafeMutablePointer<Int>
    private var generation: Int { counters[0] }
    private var remaining: Int { counters[1] }
    private var parts = 0
    private var task: _KernelTask? = nil
    private var context = UnsafeMutableRawPointer(bitPattern: 64)!

    init() {
        counters = .allocate(capacity: 2); counters.initialize(repeating: 0, count: 2)
    }

    /// Holds the pool for one parallel call (waiting while another thread's
    /// call holds it) and returns a workspace of at least `bytes`. Allocates
    /// only to grow. Part functions never call back into the pool, so the
    /// wait cannot deadlock.
    package func acquire(bytes: Int) -> UnsafeMutableRawPointer {
        busy.lock()
        if capacity < max(bytes, 64) {
            workspace?.deallocate()
            capacity = max(bytes, 64)
            workspace = .allocate(byteCount: capacity, alignment: 64)
        }
        return workspace!
    }

    package func release() { busy.unlock() }

    /// ``run(parts:task:context:)`` with `job`, on the caller's stack, as the context.
    package func run<Job>(_ job: inout Job, parts: Int, task: _KernelTask) {
        withUnsafeMutablePointer(to: &job) { run(parts: parts, task: task, context: UnsafeMutableRawPointer($0)) }
    }

    /// Runs `task(context, 0)` on this thread and parts 1 … parts − 1 on
    /// workers, returning when all are done. Call between acquire and release.
    func run(parts: Int, task: _KernelTask, context: UnsafeMutableRawPointer) {
        startWorkers(parts - 1)
        monitor.lock()
        self.task = task
        self.context = context
        self.parts = min(parts, workers + 1)
        bnk_store_release(counters + 1, self.parts - 1)
        bnk_store_release(counters, generation &+ 1)
        monitor.broadcast(workReady)
        monitor.unlock()

        task(context, 0)
        // parts without a worker (thread creation failed): run them here
        for part in self.parts..<max(parts, self.parts) { task(context, part) }

        // the workers' parts are about as long as this one: poll first
        _spin(microseconds: Self.callerSpin) { bnk_load_acquire(counters + 1) == 0 }
        monitor.lock()
        while remaining > 0 { monitor.wait(workDone) }
        monitor.unlock()
    }

    /// How long the caller polls for the workers' parts before it sleeps.
    static let callerSpin = 2000
    /// How long a worker polls for the next call before it sleeps: a
    /// training step's kernel calls come in pairs (statistics, normalize),
    /// and waking a sleeping thread costs far more than a pass on a small
    /// batch (`bnkbench --tune`); a longer poll would take the core from
    /// OpenBLAS's threads between the pairs.
    static let workerSpin = 100

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
        while true {
            _spin(microseconds: Self.workerSpin) { bnk_load_acquire(counters) != seen }
            monitor.lock()
            while generation == seen { monitor.wait(workReady) }
            seen = generation
            guard part < parts, let task else { monitor.unlock(); continue }
            let context = self.context
            monitor.unlock()
            task(context, part)
            monitor.lock()
            bnk_store_release(counters + 1, remaining - 1)
            if remaining == 0 { monitor.signal(workDone) }
            monitor.unlock()
        }
    }
}

/// Polls `done` (with the CPU's pause hint) until it holds or `microseconds`
/// have passed; the caller then sleeps on its condition variable, which
/// re-checks under the monitor.
private func _spin(microseconds: Int, _ done: () -> Bool) {
    var start = timespec(), t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    while !done() {
        for _ in 0..<32 { bnk_cpu_relax() }
        clock_gettime(CLOCK_MONOTONIC, &t)
        if (t.tv_sec - start.tv_sec) * 1_000_000 + (t.tv_nsec - start.tv_nsec) / 1000 >= microseconds { return }
    }
}

@usableFromInline package let _threading = _KernelThreading()
