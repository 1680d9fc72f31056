// MARK: - The package's one worker pool
//
// Kernel calls on large batches split their rows into contiguous parts: the
// calling thread runs part 0, persistent worker threads (created on first
// use) the others. One pool for every kernel module (BatchNormKernels,
// MatrixKernels) and one partition, so a product and a normalization never
// run on two pools fighting for the same cores. (`DispatchQueue
// .concurrentPerform` would split the same way, but allocates a few blocks
// per call; this pool allocates nothing after its workers start.)

import CBatchNormKitIntrinsics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The share `part` of `parts` owns of `n` items (rows, samples, a
/// batch's samples over ranks): contiguous, in order, sizes differing by
/// at most one. The one partition of the package (kernels, Trainer, bench).
@inlinable @inline(__always)
package func _partRange(_ part: Int, of parts: Int, _ n: Int) -> Range<Int> {
    (n * part / parts)..<(n * (part + 1) / parts)
}

/// One part of a parallel call: (job, part index). A C function pointer, so
/// handing it to a worker retains and allocates nothing.
package typealias _KernelTask = @convention(c) (UnsafeMutableRawPointer, Int) -> Void

/// The kernels' thread count, their worker threads and the reductions'
/// workspace. One parallel call at a time: ``acquire(bytes:)`` waits while
/// another thread's call holds the pool, so a call always runs in the parts
/// its thread count gives and its sums come out the same whatever else runs
/// (falling back to one part when the pool was busy made dγ, dβ and the
/// moments depend on timing in their last bits).
@usableFromInline
package final class _KernelThreading: @unchecked Sendable {
    @usableFromInline package var threads = 1

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

    package init() {
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
    package func run(parts: Int, task: _KernelTask, context: UnsafeMutableRawPointer) {
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
