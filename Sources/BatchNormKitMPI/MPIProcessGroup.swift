import BatchNormKit
import CBatchNormKitMPI
#if canImport(Glibc)
import Glibc
#endif

/// The processes of an MPI job as a ``ProcessGroup`` (PyTorch's
/// `torch.distributed` with the MPI backend): `mpirun -np N program` starts
/// N processes, on one machine or many, and rank r of `MPI_COMM_WORLD` is
/// rank r here.
///
/// - MPI is initialized (`MPI_Init_thread`, funneled: only the thread that
///   trains calls MPI) by the first ``world()`` and finalized once when the
///   process exits. A program started without `mpirun` is a job of one.
/// - ``allReduceSum(_:)`` is `MPI_Iallreduce` (sum of Doubles) in place,
///   after a 2-value check that every rank passes the same count. Open MPI's
///   all-reduce algorithms (ring, recursive doubling, reduce + broadcast)
///   compute each element once and send it, or add the same two partial sums
///   on both sides of a pair (IEEE addition commutes exactly), so every rank
///   ends with the same bits; the MPI tests check it on 2 and 3 ranks.
/// - Collectives are non-blocking calls completed by polling, so that while
///   it waits rank 0 also watches for fault reports and every rank for its
///   timeout: a rank that fails calls ``abort(reason:)``, which sends its
///   reason to rank 0; rank 0's pending or next collective throws
///   `rankFailed(rank:reason:)` naming it, and its `abort` ends the job
///   (`MPI_Abort`). A killed process is noticed by `mpirun`, which ends the
///   job and names the rank.
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    /// How long a rank waits in one collective before it fails with
    /// `rankFailed(rank: nil, …)` (it must cover rank 0's evaluation pass).
    public var timeoutSeconds: Double = 600
    /// How long a failed rank waits for rank 0 to end the job before it ends it itself.
    public var abortGraceSeconds: Double = 5

    private let collectives: MPI_Comm
    private let faults: MPI_Comm
    /// Rank 0's receive of a fault report from any rank, posted at start.
    private var faultRequest: MPI_Request?
    private let faultText: UnsafeMutablePointer<UInt8>
    private var reportedFailure: BatchNormKitError?
    private let countCheck: UnsafeMutablePointer<Double>
    private static let faultCapacity = 4096, faultTag: Int32 = 77

    /// This process's handle on the job (MPI initialized on the first call;
    /// every call returns the same object).
    /// - Throws: `rankFailed` when MPI cannot start (e.g. no `mpirun` where
    ///   Open MPI needs one).
    public static func world() throws -> MPIProcessGroup { try shared.get() }

    nonisolated(unsafe) private static let shared = Result<MPIProcessGroup, Error> { try MPIProcessGroup() }

    private init() throws {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            try Self.check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread")
            atexit { MPIProcessGroup.finalizeAtExit() }
        }
        let world = bnk_mpi_comm_world()
        // errors come back as codes (thrown) instead of ending the job unexplained
        MPI_Comm_set_errhandler(world, bnk_mpi_errors_return())
        var communicator = bnk_mpi_comm_null(), faultCommunicator = bnk_mpi_comm_null()
        try Self.check(MPI_Comm_dup(world, &communicator), "MPI_Comm_dup")
        try Self.check(MPI_Comm_dup(world, &faultCommunicator), "MPI_Comm_dup")
        collectives = communicator!
        faults = faultCommunicator!
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(collectives, &r)
        MPI_Comm_size(collectives, &n)
        rank = Int(r)
        size = Int(n)
        faultText = .allocate(capacity: Self.faultCapacity)
        countCheck = .allocate(capacity: 2)
        faultRequest = bnk_mpi_request_null()
        if rank == 0 {
            try Self.check(MPI_Irecv(faultText, Int32(Self.faultCapacity), bnk_mpi_byte(), MPI_ANY_SOURCE, Self.faultTag,
                                     faults, &faultRequest), "MPI_Irecv")
        }
    }

    /// At exit: rank 0's pending fault receive is cancelled, then `MPI_Finalize`.
    private static func finalizeAtExit() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        guard finalized == 0 else { return }
        if case let .success(group) = shared, group.rank == 0, group.reportedFailure == nil {
            MPI_Cancel(&group.faultRequest)
            MPI_Wait(&group.faultRequest, nil)
        }
        MPI_Finalize()
    }

    // MARK: - Collectives

    public func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
        try checkSameCount(values.count, "allReduceSum count")
        guard values.count > 0 else { return }
        var request = bnk_mpi_request_null()
        try Self.check(MPI_Iallreduce(bnk_mpi_in_place(), values.baseAddress, Int32(values.count), bnk_mpi_double(),
                                      bnk_mpi_sum(), collectives, &request), "MPI_Iallreduce")
        try complete(&request, "an all-reduce of \(values.count) values")
    }

    public func broadcast(_ values: UnsafeMutableBufferPointer<Double>, from root: Int) throws {
        guard (0..<size).contains(root) else {
            throw BatchNormKitError.invalidArgument(name: "broadcast root", value: "\(root)", requirement: "must be a rank in 0..<\(size)")
        }
        try checkSameCount(values.count, "broadcast count")
        guard values.count > 0 else { return }
        var request = bnk_mpi_request_null()
        try Self.check(MPI_Ibcast(values.baseAddress, Int32(values.count), bnk_mpi_double(), Int32(root), collectives, &request),
                       "MPI_Ibcast")
        try complete(&request, "a broadcast of \(values.count) values")
    }

    public func barrier() throws {
        var request = bnk_mpi_request_null()
        try Self.check(MPI_Ibarrier(collectives, &request), "MPI_Ibarrier")
        try complete(&request, "a barrier")
    }

    /// Every rank passes `count`: one all-reduce of (count, −count) under MAX gives the largest and the smallest.
    private func checkSameCount(_ count: Int, _ name: String) throws {
        guard count <= Int(Int32.max) else {
            throw BatchNormKitError.invalidArgument(name: name, value: "\(count)", requirement: "must be at most \(Int32.max) (MPI counts are 32-bit)")
        }
        countCheck[0] = Double(count)
        countCheck[1] = -Double(count)
        var request = bnk_mpi_request_null()
        try Self.check(MPI_Iallreduce(bnk_mpi_in_place(), countCheck, 2, bnk_mpi_double(), bnk_mpi_max(), collectives, &request),
                       "MPI_Iallreduce")
        try complete(&request, "the count check of a collective")
        if countCheck[0] != -countCheck[1] {
            throw BatchNormKitError.invalidArgument(name: name, value: "\(count) on rank \(rank)",
                                                    requirement: "every rank must pass the same number of values"
                                                        + " (they passed \(Int(-countCheck[1])) to \(Int(countCheck[0])))")
        }
    }

    /// Polls `request` to completion; meanwhile rank 0 checks for fault
    /// reports and every rank for its timeout. Yields the CPU between polls
    /// after the first few hundred (ranks may share cores).
    private func complete(_ request: inout MPI_Request?, _ what: @autoclosure () -> String) throws {
        var done: Int32 = 0, polls = 0
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while true {
            try Self.check(MPI_Test(&request, &done, nil), "MPI_Test")
            if done != 0 { return }
            do {
                try checkFaultReports()
            } catch {
                // A rank may fail right after its side of this collective
                // (e.g. agree(on:) throwing on every rank): let the call
                // finish here too, so this rank reaches its own verdict, and
                // the report is thrown by the next collective.
                if try finishes(&request, withinSeconds: 0.2) { return }
                throw error
            }
            polls += 1
            if polls > 200 { sched_yield() }
            if polls & 255 == 0, Self.seconds(since: start) > timeoutSeconds {
                throw BatchNormKitError.rankFailed(rank: nil, reason: "rank \(rank) waited \(Int(timeoutSeconds)) s for the others in \(what())")
            }
        }
    }

    /// Polls `request` for up to `seconds`; whether it completed.
    private func finishes(_ request: inout MPI_Request?, withinSeconds seconds: Double) throws -> Bool {
        var done: Int32 = 0
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        repeat {
            try Self.check(MPI_Test(&request, &done, nil), "MPI_Test")
            if done != 0 { return true }
            sched_yield()
        } while Self.seconds(since: start) < seconds
        return false
    }

    /// Rank 0: throws the failure a rank reported, if one has arrived.
    private func checkFaultReports() throws {
        guard rank == 0 else { return }
        if let reportedFailure { throw reportedFailure }
        var arrived: Int32 = 0
        var status = MPI_Status()
        try Self.check(MPI_Test(&faultRequest, &arrived, &status), "MPI_Test")
        guard arrived != 0 else { return }
        var count: Int32 = 0
        MPI_Get_count(&status, bnk_mpi_byte(), &count)
        let reason = String(decoding: UnsafeBufferPointer(start: faultText, count: max(0, Int(count))), as: UTF8.self)
        let failure = BatchNormKitError.rankFailed(rank: Int(status.MPI_SOURCE), reason: reason)
        reportedFailure = failure
        throw failure
    }

    // MARK: - Faults

    /// Ends the whole job; never returns. Rank 0 (which has printed its
    /// error) calls `MPI_Abort`. Another rank sends `reason` to rank 0 and
    /// waits for rank 0 to end the job, naming this rank; if rank 0 does not
    /// within ``abortGraceSeconds`` (it is busy outside a collective, or
    /// gone), this rank prints the reason itself and calls `MPI_Abort`.
    public func abort(reason: String) {
        if rank != 0 {
            // a send buffer that outlives the non-blocking send (never freed: the process ends here)
            let bytes = Array(reason.utf8.prefix(Self.faultCapacity))
            let message = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
            message.initialize(from: bytes, count: bytes.count)
            var request = bnk_mpi_request_null(), sent: Int32 = 0
            var start = timespec()
            clock_gettime(CLOCK_MONOTONIC, &start)
            if MPI_Isend(message, Int32(bytes.count), bnk_mpi_byte(), 0, Self.faultTag, faults, &request) == MPI_SUCCESS {
                while Self.seconds(since: start) < abortGraceSeconds {
                    if sent == 0, MPI_Test(&request, &sent, nil) != MPI_SUCCESS { break }
                    usleep(10_000)
                }
            }
            fputs("bnkit: rank \(rank) of \(size): error: \(reason) (rank 0 did not end the job; aborting)\n", stderr)
        }
        fflush(stdout)
        MPI_Abort(bnk_mpi_comm_world(), 1)
        exit(1)
    }

    // MARK: - Helpers

    private static func check(_ code: Int32, _ call: String) throws {
        guard code != MPI_SUCCESS else { return }
        var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1), length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw BatchNormKitError.rankFailed(rank: nil, reason: "\(call): \(String(cString: text))")
    }

    private static func seconds(since start: timespec) -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec - start.tv_sec) + Double(now.tv_nsec - start.tv_nsec) * 1e-9
    }
}
