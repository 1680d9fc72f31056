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
/// counts. ``ThreadProcessGroup`` connects threads of one process; an MPI
/// backend (`MPI_Allreduce`) is the roadmap's next step and needs only this
/// one method.
public protocol ProcessGroup: AnyObject {
    /// This participant, 0..<size.
    var rank: Int { get }
    /// Number of participants.
    var size: Int { get }
    /// Element-wise sum of `values` over all ranks, in place; every rank ends
    /// with the same bits (the sum is taken in rank order).
    ///
    /// - Throws: `invalidArgument` on every rank when the ranks pass
    ///   different counts.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws
}

/// `size` ranks that are threads of this process: rank r must run on its own
/// thread (an all-reduce waits for every rank). For tests, and for
/// data-parallel training on the cores of one machine.
public final class ThreadProcessGroup: ProcessGroup {
    public let rank: Int
    public var size: Int { shared.size }
    private let shared: _Rendezvous

    private init(rank: Int, shared: _Rendezvous) {
        self.rank = rank
        self.shared = shared
    }

    /// One group object per rank, index = rank.
    public static func make(size: Int) throws -> [ThreadProcessGroup] {
        guard size >= 1 else {
            throw BatchNormKitError.invalidArgument(name: "size", value: "\(size)", requirement: "must be ≥ 1")
        }
        let shared = _Rendezvous(size: size)
        return (0..<size).map { ThreadProcessGroup(rank: $0, shared: shared) }
    }

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        guard shared.allReduceSum(values, rank: rank) else {
            throw BatchNormKitError.invalidArgument(name: "allReduceSum count", value: "\(values.count) on rank \(rank)",
                                                    requirement: "every rank must pass the same number of values")
        }
    }
}

/// The meeting point of a ThreadProcessGroup: every rank publishes its
/// buffer, waits for all, adds all buffers in rank order into its own copy,
/// waits again (so nobody overwrites a buffer another rank still reads), and
/// writes the sum back. Allocation-free after the first call of a size.
final class _Rendezvous {
    let size: Int
    // Allocated, never moved: `&storedProperty` may pass a temporary copy,
    // and a copied mutex excludes nothing.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var arrived = 0
    private var generation = 0
    // Per-rank slots in raw memory: ranks write only their own slot, and read
    // the others' only between the two barriers of a call.
    private let buffers: UnsafeMutablePointer<UnsafeMutableBufferPointer<Double>>
    // Each rank's private sum, grown only by that rank.
    private let sums: UnsafeMutablePointer<UnsafeMutablePointer<Double>>
    private let capacities: UnsafeMutablePointer<Int>

    init(size: Int) {
        self.size = size
        buffers = .allocate(capacity: size)
        buffers.initialize(repeating: UnsafeMutableBufferPointer(start: nil, count: 0), count: size)
        sums = .allocate(capacity: size)
        for r in 0..<size { (sums + r).initialize(to: .allocate(capacity: 1)) }
        capacities = .allocate(capacity: size)
        capacities.initialize(repeating: 1, count: size)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        for r in 0..<size { sums[r].deallocate() }
        buffers.deallocate(); sums.deallocate(); capacities.deallocate()
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate(); mutex.deallocate()
    }

    /// Blocks until all `size` ranks have called it (a reusable barrier).
    ///
    /// Out of line, and the rendezvous does not throw (ThreadProcessGroup
    /// throws after it returns): while the all-reduce was a throwing function
    /// with this barrier inlined, release builds (Swift 6.3.1, -O) saw a
    /// garbage error after successful all-reduces and crashed; debug builds,
    /// ASan and TSan saw nothing. Both changes together run clean in release.
    @inline(never)
    private func barrier() {
        pthread_mutex_lock(mutex)
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            pthread_cond_broadcast(condition)
        } else {
            while generation == myGeneration { pthread_cond_wait(condition, mutex) }
        }
        pthread_mutex_unlock(mutex)
    }

    /// False (on every rank, values untouched) when the ranks passed different counts.
    func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>, rank: Int) -> Bool {
        buffers[rank] = values
        if values.count > capacities[rank] {
            sums[rank].deallocate()
            sums[rank] = .allocate(capacity: values.count)
            capacities[rank] = values.count
        }
        barrier()   // (its mutex publishes the slot to the other ranks)
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
        barrier()   // every rank has read every buffer
        guard consistent else { return false }
        values.baseAddress!.update(from: sums[rank], count: values.count)
        return true
    }
}
