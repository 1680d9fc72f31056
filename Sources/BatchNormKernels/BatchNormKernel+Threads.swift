// MARK: - Threading for large batches
//
// A second core adds memory bandwidth on this kind of machine (`bnkbench
// --probe-threads`; Benchmarks/README.md), and BatchNorm on large batches is bandwidth-bound. So a
// kernel call on a batch of at least ``BatchNormKernel/parallelThreshold``
// values splits its rows (samples for `(N, C, L)`) into ``BatchNormKernel/threadCount``
// contiguous parts: the calling thread runs part 0, the package's worker
// pool (KernelSupport's `_threading`) the others. Smaller batches never
// leave the calling thread: waking a worker costs microseconds, more than a
// whole (256, 256) pass.
//
// The reductions give each part its own Float32 block sums and Double
// partial sums, in one workspace allocated once and grown only for a wider
// batch (no allocation per call), then add the partials in part order. All
// parts subtract the same per-feature shift, so their sums add exactly
// like the blocks of one thread (no Chan merge needed); results are
// deterministic for a given thread count and can differ from the
// single-thread ones in the last bits.

import KernelSupport

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
        get { _parallelValues }
        set {
            precondition(newValue >= 1, "BatchNormKernel.parallelThreshold must be ≥ 1")
            _parallelValues = newValue
        }
    }

    /// How many parts a call on `shape` runs in (1: the calling thread only).
    @inlinable
    package static func _threadParts(_ shape: BatchNormShape) -> Int {
        BatchNormKernels._threadParts(values: shape.elementCount, samples: shape.n)
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
        BatchNormKernel._reduceSamples(T.self, a, shape: shape, samples: _partRange(part, of: parts, shape.n))
    }
}

/// Backs ``BatchNormKernel/parallelThreshold``.
@usableFromInline nonisolated(unsafe) var _parallelValues = KernelTuning.machine.parallelThreshold
