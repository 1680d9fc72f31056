// Command-line options of bnkbench.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKernels

struct Options {
    var build = ""
    var threadCounts: [Int] = []
    var smoke = false
    var filters: [String] = []
    var jsonPath: String?
    var noReference = false
    var fastPolicy = RepeatPolicy.fast
    var referencePolicy = RepeatPolicy.reference
    var allocations = true
    var kernels = false
    var rounds = 1

    static let usage = """
    usage: bnkbench [--build native|portable] [--threads N[,M…]] [--filter TEXT]…
                    [--json PATH] [--min-time SECONDS] [--quick] [--no-reference] [--smoke]

      --build KIND      which build this is, for the report and the JSON name
                        (the Makefile passes native or portable; default: inferred
                        from -DBATCHNORMKIT_FMA)
      --threads LIST    thread counts to run (OpenBLAS and the kernels); default
                        1 and all cores
      --filter TEXT     only cases whose name contains TEXT (repeatable), e.g.
                        --filter bn.forward-train --filter "(256, 256)"
      --json PATH       where to write the figures (default bench-results/bench-<build>.json)
      --min-time S      seconds of timed runs per fast case (default 0.25)
      --quick           shorter runs (min-time 0.08, reference capped harder)
      --no-reference    skip the naive reference
      --no-alloc        skip the allocation count
      --kernels         also time the four BatchNorm kernels alone (kernel.*)
      --rounds N        run every case N times (minutes apart) and keep each
                        case's best median: other jobs on a shared machine come
                        and go; the table is printed once, at the end
      --parallel-threshold N
                        values (N·C·L) from which the kernels split a batch across
                        threads (BatchNormKernel.parallelThreshold, default 524288)
      --streaming-threshold N
                        output values (N·C·L) from which the kernels write with
                        streaming stores (BatchNormKernel.streamingThreshold, default 2097152)
      --probe-threads   only measure streaming bandwidth with 1 and 2 threads
      --probe-copy      only compare direct stores with L1 chunks + memcpy
      --smoke           tiny sizes, every case once; the Linear and seed-network
                        cases checked against the reference; exits 1 on a mismatch
    """

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var i = 1
        func value() -> String {
            i += 1
            guard i < args.count else { fail("\(args[i - 1]) needs a value") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--build": o.build = value()
            case "--threads":
                o.threadCounts = value().split(separator: ",").map {
                    guard let n = Int($0), n >= 1 else { fail("--threads takes positive integers, e.g. 1 or 1,2") }
                    return n
                }
            case "--smoke": o.smoke = true
            case "--probe-threads": probeThreads(); exit(0)
            case "--probe-copy": probeCopy(); exit(0)
            case "--filter": o.filters.append(value())
            case "--json": o.jsonPath = value()
            case "--no-reference": o.noReference = true
            case "--no-alloc": o.allocations = false
            case "--kernels": o.kernels = true
            case "--rounds":
                guard let v = Int(value()), v >= 1 else { fail("--rounds takes a positive count") }
                o.rounds = v
            case "--parallel-threshold":
                guard let v = Int(value()), v >= 1 else { fail("--parallel-threshold takes a positive count of values") }
                BatchNormKernel.parallelThreshold = v
            case "--streaming-threshold":
                guard let v = Int(value()), v >= 1 else { fail("--streaming-threshold takes a positive count of values") }
                BatchNormKernel.streamingThreshold = v
            case "--min-time":
                guard let t = Double(value()), t >= 0 else { fail("--min-time takes seconds") }
                o.fastPolicy.minTime = t
            case "--quick":
                o.fastPolicy.minTime = 0.08; o.fastPolicy.minReps = 9
                o.referencePolicy.minTime = 0.05; o.referencePolicy.minReps = 1; o.referencePolicy.maxTime = 0.3
            case "-h", "--help": print(usage); exit(0)
            default: fail("unknown argument \(args[i])")
            }
            i += 1
        }
        if o.build.isEmpty {
            #if BATCHNORMKIT_FMA
            o.build = "native"
            #else
            o.build = "portable"
            #endif
        }
        if o.threadCounts.isEmpty {
            let cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            o.threadCounts = o.smoke ? [1, 2] : (cores > 1 ? [1, cores] : [1])
        }
        return o
    }
}

func fail(_ message: String) -> Never {
    fputs("bnkbench: \(message)\n\(Options.usage)\n", stderr)
    exit(2)
}
