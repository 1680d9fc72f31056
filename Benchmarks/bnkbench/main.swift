// bnkbench — BatchNormKit's benchmarks. See Benchmarks/README.md.
//
//   bnkbench --build native|portable   all cases at 1 thread and all cores
//   bnkbench --smoke                   tiny sizes, every case once
//   bnkbench --tune                    the kernels' thresholds measured here vs derived
//   bnkbench --help                    every option

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKit
import BatchNormKernels
import CBatchNormKitBLAS
import CBatchNormKitMallocCounter

let options = Options.parseOrExit()
options.applyKernelSettings()
if options.probeThreads { probeThreads(); exit(0) }
if options.probeCopy { probeCopy(); exit(0) }
if options.listShapes { print(CaseSizes.full.json); exit(0) }
if options.tune { tuneKernels(); exit(0) }
let bench = Bench(options: options)
let sizes = options.smoke ? CaseSizes.smoke : CaseSizes.full
let info = SystemInfo.collect(options: options)
info.printHeader()

var allocation: AllocationReport? = nil

/// Every selected case at one thread count (OpenBLAS and the kernels).
func runCases(threads: Int) throws {
    bench.setThreads(threads)
    setKernelThreads(threads)
    if options.smoke {
        // the kernels' threaded and streaming paths are checked by swift test
        // (ThreadedKernelTests); here every case runs once
        print("smoke: tiny sizes, each case once" + (threads > 1 ? ", \(threads) threads" : ""))
    }
    for shape in sizes.batchNorm { try batchNormCases(bench, shape: shape) }
    for shape in sizes.batchNormReLU { try batchNormReLUCases(bench, shape: shape) }
    if options.kernels || options.filters.contains(where: { $0.hasPrefix("kernel") }) {
        for shape in sizes.batchNorm { try kernelCases(bench, shape: shape) }
        for shape in sizes.batchNorm { try fusedReLUKernelCases(bench, shape: shape) }
        for shape in sizes.groupNorm { try groupNormKernelCases(bench, shape: shape) }
    }
    for shape in sizes.groupNorm { try groupNormCases(bench, shape: shape) }
    for (i, o) in sizes.linearShapes { try linearCases(bench, inFeatures: i, outFeatures: o, batch: sizes.linearBatch) }
    for (i, o) in sizes.linearShapes { try matrixKernelCases(bench, inFeatures: i, outFeatures: o, batch: sizes.linearBatch) }
    for n in sizes.stepBatches { try stepCase(bench, sizes: sizes, batch: n) }
    for n in sizes.inferenceBatches {
        try inferenceCase(bench, sizes: sizes, batch: n)
        try foldedInferenceCase(bench, sizes: sizes, batch: n)
    }
    try epochCase(bench, sizes: sizes)
    try convolutionCases(bench, smoke: options.smoke)
}
do {
    for round in 0..<options.rounds {
        if options.rounds > 1 { print("round \(round + 1) of \(options.rounds)…"); fflush(stdout) }
        bench.roofline.newRound()
        for threads in options.threadCounts { try runCases(threads: threads) }
    }
    if options.rounds > 1 { bench.printTable() }
    if options.allocations && (options.filters.isEmpty || bench.wants("alloc")) {
        bench.setThreads(options.threadCounts[0])
        setKernelThreads(options.threadCounts[0])
        let n = options.smoke ? sizes.stepBatches[0] : 256
        var report = try countAllocations(sizes: sizes, batch: n)
        let maxThreads = max(options.threadCounts.max() ?? 1, options.smoke ? 2 : 1)
        if maxThreads > 1 { report.threaded = (maxThreads, try countThreadedAllocations(threads: maxThreads, smoke: options.smoke)) }
        allocation = report
        printAllocations(report, batch: n, active: info.mallocCounterActive, configuration: info.configuration)
    }
} catch {
    print("bnkbench: error: \(error)")
    exit(1)
}

if options.smoke {
    print("bench-smoke: \(bench.passed) passed, \(bench.failed) failed")
    if let path = options.jsonPath { writeJSON(path: path, info: info, bench: bench, allocation: allocation) }
    exit(bench.failed == 0 ? 0 : 1)
}

let path = options.jsonPath ?? "bench-results/bench-\(options.build).json"
writeJSON(path: path, info: info, bench: bench, allocation: allocation)
// keep the black hole's stores observable
if _blackHoleSink == 0x5EED { print("") }
