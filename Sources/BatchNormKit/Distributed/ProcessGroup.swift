import BatchNormKernels
import KernelSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ranks of a data-parallel job, as ``SyncBatchNorm`` sees them (PyTorch's
/// `torch.distributed` process group): every rank holds a slice of the batch
/// and they exchange per-feature sums.
///
/// Every rank must make the same calls in the same order with the same
/// counts. ``ThreadProcessGroup`` connects threads of one process;
/// `MPIProcessGroup` (the `BatchNormKitMPI` product) connects processes
/// under `mpirun`, on one machine or many.
///
/// Faults: a rank that fails calls ``abort(reason:)``; every other rank's
/// pending or next collective then throws ``BatchNormKitError/rankFailed(rank:reason:)``
/// naming it, so no rank waits forever for one that will not come.
public protocol ProcessGroup: AnyObject {
    /// This participant, 0..<size.
    var rank: Int { get }
    /// Number of participants.
    var size: Int { get }
    /// Element-wise sum of `values` over all ranks, in place; every rank ends
    /// with the same bits.
    ///
    /// - Throws: `invalidArgument` on every rank when the ranks pass
    ///   different counts; `rankFailed` when a rank failed or (with a
    ///   timeout) did not arrive in time.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
    /// Copies rank `root`'s `values` into every rank's `values` (same count on every rank).
    ///
    /// Default: an all-reduce of `values` on the root and zeros elsewhere
    /// (x + 0 = x exactly, so every rank gets the root's bits).
    func broadcast(_ values: UnsafeMutableBufferPointer<Double>, from root: Int) throws
    /// Returns when every rank has called it. Default: an all-reduce of one value.
    func barrier() throws
    /// Ends the job because this rank failed: the others' collectives throw
    /// `rankFailed(rank: rank, reason:)`. A process group across processes may
    /// end this process instead of returning. Default: nothing.
    func abort(reason: String)
}

extension ProcessGroup {
    public func broadcast(_ values: UnsafeMutableBufferPointer<Double>, from root: Int) throws {
        guard (0..<size).contains(root) else {
            throw BatchNormKitError.invalidArgument(name: "broadcast root", value: "\(root)", requirement: "must be a rank in 0..<\(size)")
        }
        if rank != root { values.update(repeating: 0) }
        try allReduceSum(values)
    }

    public func barrier() throws {
        var token = 0.0
        try withUnsafeMutablePointer(to: &token) { try allReduceSum(UnsafeMutableBufferPointer(start: $0, count: 1)) }
    }

    public func abort(reason: String) {}
}

/// `size` ranks that are threads of this process: rank r must run on its own
/// thread (an all-reduce waits for every rank). For tests, and for
/// data-parallel training on the cores of one machine.
///
/// A rank that fails calls ``abort(reason:)``: the ranks waiting for it wake
/// and throw `rankFailed` naming it, and so does every later collective.
/// With a timeout, a rank that does not arrive within it fails the group too.
public final class ThreadProcessGroup: ProcessGroup {
    public let rank: Int
    public var size: Int { shared.size }
    private let shared: _Rendezvous

    private init(rank: Int, shared: _Rendezvous) {
        self.rank = rank
        self.shared = shared
    }

    /// One group object per rank, index = rank.
    /// - Parameters:
    ///   - size: the number of ranks, ≥ 1.
    ///   - timeoutSeconds: how long a rank waits in a collective for
    ///     the others before the group fails (nil: as long as it takes).
    public static func make(size: Int, timeoutSeconds: Double? = nil) throws -> [ThreadProcessGroup] {
        guard size >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "size", value: "\(size)", requirement: "must be ≥ 1")
        }
        if let timeoutSeconds, !(timeoutSeconds > 0 && timeoutSeconds.isFinite) {
            throw BatchNormKitError.invalidArgument(name: "timeout", value: "\(timeoutSeconds) s", requirement: "must be finite and > 0")
        }
        let shared = _Rendezvous(size: size, timeoutSeconds: timeoutSeconds)
        return (0..<size).map { ThreadProcessGroup(rank: $0, shared: shared) }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        switch shared.allReduceSum(values, rank: rank) {
        case .done: return
        case .countMismatch:
            throw BatchNormKitError.invalidArgument(name: "allReduceSum count", value: "\(values.count) on rank \(rank)",
                                                    requirement: "every rank must pass the same number of values")
        case .failed:
            let failure = shared.failure!
            throw BatchNormKitError.rankFailed(rank: failure.rank, reason: failure.reason)
        }
    }

    public func abort(reason: String) { shared.fail(rank: rank, reason: reason) }
}

/// The meeting point of a ThreadProcessGroup: every rank publishes its
/// buffer, waits for all, adds all buffers in rank order into its own copy,
/// waits again (so nobody overwrites a buffer another rank still reads), and
/// writes the sum back. Allocation-free after the first call of a size.
final class _Rendezvous {
    let size: Int
    let timeoutSeconds: Double?
    private let monitor = _Monitor()      // one condition: a barrier's release or a failure
    private var arrived = 0
    private var generation = 0
    /// The first failure (set once, under the mutex): every collective from then on fails.
    private(set) var failure: (rank: Int?, reason: String)?
    // Per-rank slots in raw memory: ranks write only their own slot, and read
    // the others' only between the two barriers of a call.
    private let buffers: UnsafeMutablePointer<UnsafeMutableBufferPointer<Double>>
    // Each rank's private sum, grown only by that rank.
    private let sums: UnsafeMutablePointer<UnsafeMutablePointer<Double>>
    private let capacities: UnsafeMutablePointer<Int>

    enum Outcome { case done, countMismatch, failed }

    init(size: Int, timeoutSeconds: Double?) {
        self.size = size
        self.timeoutSeconds = timeoutSeconds
        buffers = .allocate(capacity: size)
        buffers.initialize(repeating: UnsafeMutableBufferPointer(start: nil, count: 0), count: size)
        sums = .allocate(capacity: size)
        for r in 0..<size { (sums + r).initialize(to: .allocate(capacity: 1)) }
        capacities = .allocate(capacity: size)
        capacities.initialize(repeating: 1, count: size)
    }

    deinit {
        for r in 0..<size { sums[r].deallocate() }
        buffers.deallocate(); sums.deallocate(); capacities.deallocate()
    }

    /// Records the group's first failure and wakes every waiting rank.
    func fail(rank: Int?, reason: String) {
        monitor.withLock {
            if failure == nil { failure = (rank, reason) }
            monitor.broadcast()
        }
    }

    /// Blocks until all `size` ranks have called it (a reusable barrier).
    /// `abortable`: returns false instead when the group has failed or the
    /// timeout passed (the timeout then fails the group). The second barrier
    /// of an all-reduce is not abortable: every rank is inside the call then,
    /// and none may leave while another still reads its buffer.
    ///
    /// Out of line, and the rendezvous does not throw (ThreadProcessGroup
    /// throws after it returns): while the all-reduce was a throwing function
    /// with this barrier inlined, release builds (Swift 6.3.1, -O) saw a
    /// garbage error after successful all-reduces and crashed; debug builds,
    /// ASan and TSan saw nothing. Both changes together run clean in release.
    @inline(never)
    private func barrier(abortable: Bool) -> Bool {
        monitor.lock()
        defer { monitor.unlock() }
        if abortable && failure != nil { return false }
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            monitor.broadcast()
            return true
        }
        var deadline = timespec()
        if abortable, let timeoutSeconds {
            clock_gettime(CLOCK_REALTIME, &deadline)
            let nanoseconds = Int(deadline.tv_nsec) + Int(timeoutSeconds.truncatingRemainder(dividingBy: 1) * 1e9)
            deadline.tv_sec += Int(timeoutSeconds) + nanoseconds / 1_000_000_000
            deadline.tv_nsec = nanoseconds % 1_000_000_000
        }
        while generation == myGeneration {
            if abortable && failure != nil { arrived -= 1; return false }
            if abortable, let timeoutSeconds {
                if monitor.wait(until: deadline) && generation == myGeneration {
                    if failure == nil {
                        failure = (nil, "not every rank reached the all-reduce within \(timeoutSeconds) s"
                                   + " (\(arrived) of \(size) waiting)")
                    }
                    monitor.broadcast()
                }
            } else {
                monitor.wait()
            }
        }
        return true
    }

    /// `.countMismatch` (on every rank, values untouched) when the ranks
    /// passed different counts; `.failed` when a rank failed or timed out.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, rank: Int) -> Outcome {
        buffers[rank] = values
        if values.count > capacities[rank] {
            sums[rank].deallocate()
            sums[rank] = .allocate(capacity: values.count)
            capacities[rank] = values.count
        }
        // (its monitor publishes the slot to the other ranks)
        guard barrier(abortable: true) else { return .failed }
        var consistent = true
        for r in 0..<size where buffers[r].count != values.count { consistent = false }
        if consistent {
            let sum = sums[rank]
            sum.update(repeating: 0, count: values.count)
            for r in 0..<size {
                let b = buffers[r].baseAddress!
                for i in 0..<values.count { sum[i] += b[i] }
            }
        }
        _ = barrier(abortable: false)   // every rank has read every buffer
        guard consistent else { return .countMismatch }
        values.baseAddress!.update(from: sums[rank], count: values.count)
        return .done
    }
}
