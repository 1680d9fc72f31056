// Command-line options of bnkbench (swift-argument-parser: --help, validation).

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import ArgumentParser
import BatchNormKernels
import BatchNormKit

/// A comma-separated list of thread counts, e.g. `1,2`.
struct ThreadCounts: ExpressibleByArgument {
    var counts: [Int]
    init?(argument: String) {
        let counts = argument.split(separator: ",").map { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        self.counts = counts.map { $0! }
    }
}

struct Options: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bnkbench",
        abstract: "BatchNormKit's benchmarks: every case against its naive twin and this machine's bound.",
        discussion: "See Benchmarks/README.md.")

    @Option(name: .customLong("build"),
            help: "Which build this is, for the report and the JSON name (the Makefile passes native or portable; default: inferred from -DBATCHNORMKIT_FMA).")
    var buildName: String?

    @Option(name: .customLong("threads"),
            help: "Thread counts to run (OpenBLAS and the kernels), e.g. 1 or 1,2 (default: 1 and all cores).")
    var threadList: ThreadCounts?

    @Option(name: .customLong("filter"), help: "Only cases whose name contains TEXT (repeatable), e.g. --filter bn.forward-train --filter \"(256, 256)\".")
    var filters: [String] = []

    @Option(name: .customLong("json"), help: "Where to write the figures (default bench-results/bench-<build>.json).")
    var jsonPath: String?

    @Option(name: .customLong("min-time"), help: "Seconds of timed runs per fast case (default 0.25).")
    var minTime: Double?

    @Flag(help: "Shorter runs (min-time 0.08, the naive reference capped harder).")
    var quick = false

    @Flag(name: .customLong("no-reference"), help: "Skip the naive reference.")
    var noReference = false

    @Flag(name: .customLong("no-alloc"), help: "Skip the allocation count.")
    var noAllocations = false

    @Flag(name: .customLong("no-paired"), help: "Skip the paired measurements of the large memory-bound cases (A/B runs: only the medians are compared).")
    var noPaired = false

    @Flag(help: "Also time every public kernel alone (kernel.*, kernel.gn.*), each against its twin.")
    var kernels = false

    @Option(help: "Run every case N times and keep each case's best median (other jobs on a shared machine come and go); the table is printed once, at the end.")
    var rounds = 1

    @Option(help: "Values (N·C·L) from which the kernels split a batch across threads (BatchNormKernel.parallelThreshold; default derived from the L2, see the header).")
    var parallelThreshold: Int?

    @Option(help: "Values (N·C·L) from which a normalize pass (one array read, one written) writes with streaming stores; a pass over k arrays streams from 2/k of it (BatchNormKernel.streamingThreshold; default derived from the L2 and L3).")
    var streamingThreshold: Int?

    @Option(help: "Bytes a pass may read and still count as cache-resident for the row grouping (BatchNormKernel.cacheResidentBytes; default derived from the L2).")
    var cacheResidentBytes: Int?

    @Option(help: "on or off: reductions over rows of 256–1023 features sum strips of 256 features in registers (BatchNormKernel.reductionStrips; default on in builds with -DBATCHNORMKIT_AVX512).")
    var reductionStrips: Switch?

    @Option(help: "openblas or simd16: the backend of the library's matrix products (MatrixMultiplication.backend; default by the machine rule, printed in the header).")
    var gemm: MatrixBackend?

    @Flag(help: "Only measure the crossovers behind the three kernel thresholds on this machine and print the values they give next to the derived ones.")
    var tune = false

    @Flag(help: "Only measure streaming bandwidth with 1 and 2 threads.")
    var probeThreads = false

    @Flag(help: "Only compare direct stores with L1 chunks + memcpy.")
    var probeCopy = false

    @Flag(help: "Only print the case shapes as JSON (Scripts/bench_torch.py reads them).")
    var listShapes = false

    @Flag(help: "Tiny sizes, every case once; the Linear and seed-network cases checked against the reference (exit 1 on a mismatch).")
    var smoke = false

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds takes a positive count") }
        if let v = parallelThreshold, v < 1 { throw ValidationError("--parallel-threshold takes a positive count of values") }
        if let v = streamingThreshold, v < 1 { throw ValidationError("--streaming-threshold takes a positive count of values") }
        if let v = cacheResidentBytes, v < 0 { throw ValidationError("--cache-resident-bytes takes a count of bytes ≥ 0") }
        if let t = minTime, !(t >= 0) { throw ValidationError("--min-time takes seconds ≥ 0") }
        if [probeThreads, probeCopy, listShapes, tune].filter({ $0 }).count > 1 {
            throw ValidationError("--probe-threads, --probe-copy, --list-shapes and --tune each run alone")
        }
    }

    // MARK: Resolved settings

    var build: String {
        if let buildName { return buildName }
        #if BATCHNORMKIT_FMA
        return "native"
        #else
        return "portable"
        #endif
    }

    var threadCounts: [Int] {
        if let threadList { return threadList.counts }
        let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        return smoke ? [1, 2] : (cores > 1 ? [1, cores] : [1])
    }

    var allocations: Bool { !noAllocations }

    var fastPolicy: RepeatPolicy {
        var p = RepeatPolicy.fast
        if quick { p.minTime = 0.08; p.minReps = 9 }
        if let minTime { p.minTime = minTime }
        return p
    }

    var referencePolicy: RepeatPolicy {
        var p = RepeatPolicy.reference
        if quick { p.minTime = 0.05; p.minReps = 1; p.maxTime = 0.3 }
        return p
    }

    /// Sets the kernel thresholds given on the command line.
    func applyKernelSettings() {
        if let parallelThreshold { BatchNormKernel.parallelThreshold = parallelThreshold }
        if let streamingThreshold { BatchNormKernel.streamingThreshold = streamingThreshold }
        if let cacheResidentBytes { BatchNormKernel.cacheResidentBytes = cacheResidentBytes }
        if let reductionStrips { BatchNormKernel.reductionStrips = reductionStrips == .on }
        if let gemm { MatrixMultiplication.backend = gemm }
    }
}

extension MatrixBackend: ExpressibleByArgument {}

/// An option's on/off value.
enum Switch: String, ExpressibleByArgument { case on, off }
