// The run's header (build, CPU, OpenBLAS core and threads), the allocation
// report, and the JSON file for tools.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKernels
import BatchNormKit
import CBatchNormKitBLAS
import CBatchNormKitMallocCounter

struct SystemInfo {
    var build: String
    var configuration: String
    var fma: Bool
    var cpu: String
    var cores: Int
    var date: String
    var corename: String
    var environment: [(String, String)]
    var mallocCounterActive: Bool
    var fmaPeakGFLOPs: Double
    /// The vector width of the faster FMA chains (8 or 16 lanes; see `fmaPeak()`).
    var fmaPeakLanes: Int

    static func collect(options: Options) -> SystemInfo {
        #if DEBUG
        let configuration = "debug"
        #else
        let configuration = "release"
        #endif
        #if BATCHNORMKIT_FMA
        let fma = true
        #else
        let fma = false
        #endif
        var env: [(String, String)] = []
        for key in ["OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"] {
            if let v = getenv(key) { env.append((key, String(cString: v))) }
        }
        let peak = options.smoke ? (gflops: 0.0, lanes: 0) : fmaPeak()
        return SystemInfo(build: options.build, configuration: configuration, fma: fma, cpu: cpuModel(),
                          cores: max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))), date: dateString(),
                          corename: String(cString: bnk_blas_get_corename()), environment: env,
                          mallocCounterActive: bnk_malloc_counter_active() != 0,
                          fmaPeakGFLOPs: peak.gflops, fmaPeakLanes: peak.lanes)
    }

    func printHeader() {
        let kind = build == "native" ? "CPU-specific (-target-cpu native)" : build == "portable" ? "portable (generic x86-64)" : build
        print("bnkbench — BatchNormKit benchmarks")
        print("  build:    \(build), \(kind), \(configuration), vector FMA \(fma ? "on (-DBATCHNORMKIT_FMA)" : "off (multiply + add)")")
        print("  machine:  \(cpu), \(cores) cores, \(date)")
        if fmaPeakGFLOPs > 0 {
            print("  peak:     \(fixed(fmaPeakGFLOPs, 1)) GFLOP/s single-core vector \(fma ? "FMA" : "multiply+add") (12 SIMD\(fmaPeakLanes) chains, the faster of 8 and 16 lanes)")
        }
        print("  OpenBLAS: core \(corename), threads set per section (bnk_blas_set_num_threads)")
        let gemm = MatrixMultiplication.backend, rule = MatrixMultiplication.machineBackend
        print("  products: \(gemm.rawValue)" + (gemm == rule ? " (the machine rule: OpenBLAS's kernel \(MatrixMultiplication.openBLASUsesSixteenLanes ? "uses" : "does not use") 16 lanes, AVX-512 build \(avx512Build ? "yes" : "no"))" : " (set on the command line; the rule gives \(rule.rawValue))"))
        print("  caches:   \(MachineCaches.current)")
        let tuning = KernelTuning.inForce
        print("  kernels:  \(tuning)" + (tuning == KernelTuning.machine ? " (derived from the caches)" : " (set on the command line; derived: \(KernelTuning.machine))"))
        print("            reductions in register strips (rows of 256–1023 features): \(BatchNormKernel.reductionStrips ? "on" : "off")")
        if environment.isEmpty {
            print("  env:      no OPENBLAS_* overrides (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset)")
        } else {
            print("  env:      " + environment.map { "\($0.0)=\($0.1)" }.joined(separator: " ") + "  (set by the caller)")
        }
        print("  columns:  median/min over repeated runs after a warm-up; rate = bytes that must move (GB/s),")
        print("            flops (GFLOP/s) or samples (k samples/s) per median time; speed-up = reference median /")
        print("            BNKit median; limit = the same rate at this machine's measured bound; % lim = bound time /")
        print("            BNKit median; bound = what the limit is (R read / RW read+write / 2RW 2 reads+write")
        print("            streaming at the working set named, or plain cblas_sgemm on the same shapes);")
        print("            paired (memory-bound cases of ≥ 8 MB) = % lim of \(Bench.pairs) pairs per round, the case and")
        print("            its bound measured back to back: median and range; pattern = the same for the case's passes")
        print("            run with the simplest loops on arrays of its size (the same bytes in the same order).")
        print("            ~ = the naive reference ran on the first rows of the batch only (it takes seconds per")
        print("            run on big shapes); its time is scaled by the batch ratio (it is linear in N).")
        fflush(stdout)
    }
}

func cpuModel() -> String {
    guard let f = fopen("/proc/cpuinfo", "r") else { return "unknown CPU" }
    defer { fclose(f) }
    var line: UnsafeMutablePointer<CChar>? = nil
    var cap = 0
    defer { free(line) }
    while getline(&line, &cap, f) > 0 {
        let s = String(cString: line!)
        if s.hasPrefix("model name"), let colon = s.firstIndex(of: ":") {
            return String(s[s.index(after: colon)...]).trimmingWhitespace()
        }
    }
    return "unknown CPU"
}

func dateString() -> String {
    var t = time(nil)
    var tmv = tm()
    localtime_r(&t, &tmv)
    var buf = [CChar](repeating: 0, count: 64)
    let n = strftime(&buf, buf.count, "%Y-%m-%d %H:%M:%S %Z", &tmv)
    return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}

// MARK: - Kernel threads

/// Thread count for the BatchNorm kernels (they split batches of at least
/// `BatchNormKernel.parallelThreshold` values; smaller ones stay on one thread).
func setKernelThreads(_ n: Int) { BatchNormKernel.threadCount = n }

func kernelThreadsDescription() -> String {
    let t = BatchNormKernel.threadCount
    return t == 1 ? "1" : "\(t) from \(BatchNormKernel.parallelThreshold >> 10)K values"
}

// MARK: - Allocations

func printAllocations(_ r: AllocationReport, batch n: Int, active: Bool, configuration: String) {
    print("")
    print("── heap allocations, steady state (seed network, batch \(n)) " + String(repeating: "─", count: 50))
    if configuration == "debug" {
        print("  (debug build: unoptimised code allocates where release code does not; the release figure counts)")
    }
    guard active else {
        print("  malloc counter NOT active (the interposed malloc is not the one the process calls): no figure")
        return
    }
    print("  per training step (zero_grad, forward, loss, backward, SGD): \(fixed(r.perStep, r.perStep == r.perStep.rounded() ? 0 : 2))")
    print("  the same step with AdamW (amsgrad) and a cosine schedule:     \(fixed(r.perAdamStep, r.perAdamStep == r.perAdamStep.rounded() ? 0 : 2))")
    print("  per inference forward (eval mode):                          \(fixed(r.perInference, r.perInference == r.perInference.rounded() ? 0 : 2))")
    if let (threads, counts) = r.threaded {
        for (label, count) in counts {
            print("  per \(label), split over \(threads) threads: \(fixed(count, count == count.rounded() ? 0 : 2))")
        }
    }
    let allocating = r.breakdown.filter { $0.1 != 0 }
    if allocating.isEmpty {
        print("  per call: none of the step's calls allocates")
    } else {
        print("  calls that allocate (one steady-state step, call by call):")
        for (label, count) in allocating { print("    \(pad(label, 40)) \(count)") }
    }
}

// MARK: - JSON

private func jsonNumber(_ v: Double) -> String { v.isFinite ? "\(v)" : "null" }

private func jsonTiming(_ t: Timing) -> String {
    "{\"median_s\": \(jsonNumber(t.median)), \"min_s\": \(jsonNumber(t.min)), \"reps\": \(t.reps)}"
}

func writeJSON(path: String, info: SystemInfo, bench: Bench, allocation: AllocationReport?) {
    var s = "{\n"
    s += "  \"tool\": \"bnkbench\",\n"
    s += "  \"build\": \(_jsonStringLiteral(info.build)),\n"
    s += "  \"configuration\": \(_jsonStringLiteral(info.configuration)),\n"
    s += "  \"vector_fma\": \(info.fma),\n"
    s += "  \"cpu\": \(_jsonStringLiteral(info.cpu)),\n"
    s += "  \"cores\": \(info.cores),\n"
    s += "  \"fma_peak_GFLOPs\": \(jsonNumber(info.fmaPeakGFLOPs)),\n"
    s += "  \"fma_peak_lanes\": \(info.fmaPeakLanes),\n"
    s += "  \"date\": \(_jsonStringLiteral(info.date)),\n"
    s += "  \"openblas_corename\": \(_jsonStringLiteral(info.corename)),\n"
    s += "  \"gemm_backend\": \(_jsonStringLiteral(MatrixMultiplication.backend.rawValue)),\n"
    s += "  \"environment\": {" + info.environment.map { "\(_jsonStringLiteral($0.0)): \(_jsonStringLiteral($0.1))" }.joined(separator: ", ") + "},\n"
    s += "  \"rounds\": \(bench.options.rounds),\n"
    s += "  \"thread_counts\": [" + bench.options.threadCounts.map(String.init).joined(separator: ", ") + "],\n"
    s += "  \"kernel_parallel_threshold\": \(BatchNormKernel.parallelThreshold),\n"
    s += "  \"kernel_streaming_threshold\": \(BatchNormKernel.streamingThreshold),\n"
    s += "  \"kernel_cache_resident_bytes\": \(BatchNormKernel.cacheResidentBytes),\n"
    s += "  \"kernel_reduction_strips\": \(BatchNormKernel.reductionStrips),\n"
    let caches = MachineCaches.current
    s += "  \"caches\": {\"l1d\": \(caches.l1d), \"l2\": \(caches.l2), \"l3\": \(caches.l3), \"source\": \(_jsonStringLiteral(caches.source))},\n"
    s += "  \"epoch_data\": \(epochDataDescription.map(_jsonStringLiteral) ?? "null"),\n"
    if let a = allocation, info.mallocCounterActive {
        s += "  \"allocations\": {\"per_training_step\": \(jsonNumber(a.perStep)), \"per_adamw_step\": \(jsonNumber(a.perAdamStep)), \"per_inference\": \(jsonNumber(a.perInference)), "
        if let (threads, counts) = a.threaded {
            s += "\"per_threaded_step\": {\"threads\": \(threads), "
                + counts.map { "\(_jsonStringLiteral($0.0)): \(jsonNumber($0.1))" }.joined(separator: ", ") + "}, "
        }
        s += "\"allocating_calls\": {" + a.breakdown.filter { $0.1 != 0 }.map { "\(_jsonStringLiteral($0.0)): \($0.1)" }.joined(separator: ", ") + "}},\n"
    } else {
        s += "  \"allocations\": null,\n"
    }
    s += "  \"cases\": [\n"
    s += bench.results.map { r -> String in
        var f: [String] = [
            "\"name\": \(_jsonStringLiteral(r.name))", "\"group\": \(_jsonStringLiteral(r.group))", "\"threads\": \(r.threads)",
            "\"metric\": \(_jsonStringLiteral(r.metric.jsonKind))", "\"amount\": \(jsonNumber(r.metric.amount))",
            "\"unit\": \(_jsonStringLiteral(r.metric.unit))",
            "\"fast\": \(jsonTiming(r.fast))", "\"fast_rate\": \(jsonNumber(r.metric.rate(r.fast.median)))",
        ]
        if let ref = r.reference {
            f.append("\"reference\": \(jsonTiming(ref))")
            if let rows = r.referenceRows {
                f.append("\"reference_estimated\": {\"measured_rows\": \(rows.measured), \"scaled_to_rows\": \(rows.scaledTo)}")
            }
            f.append("\"reference_rate\": \(jsonNumber(r.metric.rate(ref.median)))")
            f.append("\"speedup\": \(jsonNumber(ref.median / r.fast.median))")
        }
        if let l = r.limit {
            f.append("\"limit\": {\"kind\": \(_jsonStringLiteral(l.kind)), \"bound_s\": \(jsonNumber(l.boundTime)), \"rate\": \(jsonNumber(r.metric.rate(l.boundTime)))"
                     + l.details.map { ", \(_jsonStringLiteral($0.0)): \(jsonNumber($0.1))" }.joined() + "}")
            f.append("\"percent_of_limit\": \(jsonNumber(100 * l.boundTime / r.fast.median))")
        }
        if !r.paired.isEmpty {
            f.append("\"paired_percent_of_limit\": [" + r.paired.map(jsonNumber).joined(separator: ", ") + "]")
        }
        if !r.pairedPattern.isEmpty {
            f.append("\"paired_percent_of_pattern\": [" + r.pairedPattern.map(jsonNumber).joined(separator: ", ") + "]")
        }
        return "    {" + f.joined(separator: ", ") + "}"
    }.joined(separator: ",\n")
    s += "\n  ]\n}\n"
    // mkdir -p of the parent
    var dir = ""
    let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
    for (i, p) in parts.enumerated() {
        dir += (i == 0 ? "" : "/") + p
        if !dir.isEmpty { mkdir(dir, 0o755) }
    }
    guard let f = fopen(path, "w") else { print("bnkbench: cannot write \(path)"); return }
    fputs(s, f)
    fclose(f)
    print("\nwrote \(path)")
}

/// Whether this binary was built for AVX-512 (`-D BATCHNORMKIT_AVX512`).
#if BATCHNORMKIT_AVX512
let avx512Build = true
#else
let avx512Build = false
#endif
