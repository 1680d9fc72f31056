// bnkbench --tune: the crossovers behind the kernels' three thresholds,
// measured on the running machine, printed next to the values derived from
// its caches (KernelTuning.derived). Nothing is changed: a user who wants the
// measured values passes them back (--parallel-threshold …) or sets the
// BatchNormKernel statics.
//
// Each threshold is a size from which one variant of a pass beats the other:
//   streaming stores   normalizeAffine on (N, 1024), streaming vs normal stores
//   thread split       moments and normalizeAffine on (N, 256), 2 threads vs 1
//   row grouping       moments on (N, 256) (1 KB rows), one row vs 8 at a
//                      time, strips off
//   register strips    moments + backwardReduce on (N, 256), strips off (the
//                      row loop, grouped as in force) vs on (a build
//                      setting: reported, no crossover)
// The measured value is the smallest size from which the variant wins by
// ≥ 3 % at that size and every larger one (median of runs, the two variants
// alternated three times, best median kept); "none" if it never does.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKernels
import KernelSupport

/// One size of a crossover sweep: the two variants' best medians.
private struct SweepPoint {
    var size: Int
    var base: Double
    var variant: Double
    var ratio: Double { variant / base }
}

/// Best median of `body` over three rounds alternating with `other`.
private func alternate(_ a: () -> Void, _ b: () -> Void) -> (Double, Double) {
    var bestA = Double.infinity, bestB = Double.infinity
    for _ in 0..<3 {
        bestA = min(bestA, measure(.probe, a).median)
        bestB = min(bestB, measure(.probe, b).median)
    }
    return (bestA, bestB)
}

/// The smallest size from which the variant wins by ≥ 3 % at every larger size.
private func crossover(_ points: [SweepPoint]) -> Int? {
    var from: Int? = nil
    for p in points.reversed() {
        guard p.ratio <= 0.97 else { break }
        from = p.size
    }
    return from
}

private func printSweep(_ title: String, unit: String, base: String, variant: String, _ points: [SweepPoint]) {
    print("")
    print("── \(title) " + String(repeating: "─", count: max(4, 96 - title.count)))
    print("  \(pad(unit, 14)) \(lpad(base, 16)) \(lpad(variant, 16))   ratio")
    for p in points {
        let size = unit.hasPrefix("bytes") ? "\(p.size >> 10) KB" : "\(p.size >> 10)K"
        print("  \(pad(size, 14)) \(lpad(fixed(p.base * 1e6, 1) + " µs", 16)) "
              + "\(lpad(fixed(p.variant * 1e6, 1) + " µs", 16))   \(fixed(p.ratio, 3))")
    }
}

private func random(_ buffer: FloatBuffer, seed: UInt32) {
    var state = seed | 1
    for i in 0..<buffer.count {
        state = state &* 1_664_525 &+ 1_013_904_223
        buffer.pointer[i] = Float(Int32(bitPattern: state >> 8) - (1 << 23)) / Float(1 << 23)
    }
}

/// Runs the three sweeps and prints measured next to derived values.
func tuneKernels() {
    let derived = KernelTuning.machine
    print("bnkbench --tune: the kernels' thresholds on this machine")
    print("  caches:  \(MachineCaches.current)")
    print("  derived: \(derived)")
    fflush(stdout)
    let maxValues = 1 << 24
    let x = FloatBuffer(count: maxValues), y = FloatBuffer(count: maxValues)
    random(x, seed: 7)
    let c1024 = (k: FloatBuffer(count: 1024), a: FloatBuffer(count: 1024, fill: 0.5), b: FloatBuffer(count: 1024, fill: 0.25))
    let c256 = (k: FloatBuffer(count: 256), a: FloatBuffer(count: 256, fill: 0.5), b: FloatBuffer(count: 256, fill: 0.25))
    let never = Int.max / 4
    let single = { (streaming: Int) in _KernelSettings(threadCount: 1, parallelThreshold: never, streamingThreshold: streaming) }

    // streaming stores: normal (threshold never) vs streaming (threshold 1)
    var streaming: [SweepPoint] = []
    var values = 1 << 17
    while values <= maxValues {
        let shape = BatchNormShape(n: values / 1024, c: 1024)
        func pass(_ settings: _KernelSettings) -> () -> Void {
            { BatchNormKernel._withSettings(settings) {
                BatchNormKernel.normalizeAffine(x.pointer, shape: shape, shift: c1024.k.pointer, scale: c1024.a.pointer,
                                                bias: c1024.b.pointer, output: y.pointer)
            } }
        }
        let (normal, streamed) = alternate(pass(single(never)), pass(single(1)))
        streaming.append(SweepPoint(size: values, base: normal, variant: streamed))
        values *= 2
    }
    printSweep("streaming stores: normalizeAffine (N, 1024)", unit: "values N·C", base: "normal stores",
               variant: "streaming", streaming)

    // thread split: 1 thread vs 2, on a reduction and an elementwise pass;
    // the split must win on both
    var moments = FeatureMoments(featureCount: 256)
    var split: [SweepPoint] = []
    values = 1 << 15
    while values <= 1 << 22 {
        let shape = BatchNormShape(n: values / 256, c: 256)
        func pass(_ threads: Int) -> () -> Void {
            let settings = _KernelSettings(threadCount: threads, parallelThreshold: 1,
                                           streamingThreshold: BatchNormKernel.streamingThreshold)
            return { BatchNormKernel._withSettings(settings) {
                BatchNormKernel.moments(x.pointer, shape: shape, into: &moments)
                BatchNormKernel.normalizeAffine(x.pointer, shape: shape, shift: c256.k.pointer, scale: c256.a.pointer,
                                                bias: c256.b.pointer, output: y.pointer)
            } }
        }
        let (one, two) = alternate(pass(1), pass(2))
        split.append(SweepPoint(size: values, base: one, variant: two))
        values *= 2
    }
    printSweep("thread split: moments + normalizeAffine (N, 256)", unit: "values N·C", base: "1 thread",
               variant: "2 threads", split)

    // row grouping: 8 rows per load of the sums (resident) vs one row
    let savedResident = BatchNormKernel.cacheResidentBytes
    // the row loop's own grouping, strips off (with strips on, rows of 256
    // features take them whatever the residency; their sweep follows)
    let rowLoop = _KernelSettings(threadCount: 1, parallelThreshold: never, streamingThreshold: never, reductionStrips: false)
    var grouping: [SweepPoint] = []
    var bytes = 1 << 18
    while bytes <= 1 << 25 {
        let shape = BatchNormShape(n: bytes / 1024, c: 256)
        func pass(_ resident: Int) -> () -> Void {
            { BatchNormKernel.cacheResidentBytes = resident
              BatchNormKernel._withSettings(rowLoop) { BatchNormKernel.moments(x.pointer, shape: shape, into: &moments) } }
        }
        let (grouped, oneRow) = alternate(pass(Int.max), pass(0))
        grouping.append(SweepPoint(size: bytes, base: grouped, variant: oneRow))
        bytes *= 2
    }
    BatchNormKernel.cacheResidentBytes = savedResident
    printSweep("row grouping: moments (N, 256), 1 KB rows", unit: "bytes read", base: "8 rows at once",
               variant: "one row", grouping)

    // register strips: the reductions with strips off (the row loop as it would run) vs on
    var strips: [SweepPoint] = []
    var sumGrad = [Double](repeating: 0, count: 256), sumShifted = sumGrad
    var scratch = [Float](repeating: 0, count: 512)
    bytes = 1 << 18
    while bytes <= 1 << 25 {
        let shape = BatchNormShape(n: bytes / 1024, c: 256)
        func pass(_ on: Bool) -> () -> Void {
            let settings = _KernelSettings(threadCount: 1, parallelThreshold: never, streamingThreshold: never,
                                           reductionStrips: on)
            return { BatchNormKernel._withSettings(settings) {
                BatchNormKernel.moments(x.pointer, shape: shape, into: &moments)
                BatchNormKernel.backwardReduce(gradOutput: y.pointer, input: x.pointer, shape: shape, shift: c256.k.pointer,
                                               sumGrad: &sumGrad, sumGradShifted: &sumShifted, scratch: &scratch)
            } }
        }
        let (rows, strip) = alternate(pass(false), pass(true))
        strips.append(SweepPoint(size: bytes, base: rows, variant: strip))
        bytes *= 2
    }
    printSweep("register strips: moments + backwardReduce (N, 256)", unit: "bytes of x", base: "strips off",
               variant: "strips on", strips)
    blackHole(y.pointer, maxValues)

    // the values the sweeps give: the row grouping treats a batch as
    // resident up to the size below the crossover
    let measured = (streaming: crossover(streaming), parallel: crossover(split),
                    resident: crossover(grouping).map { $0 / 2 })
    func show(_ v: Int?, _ unit: (Int) -> String) -> String { v.map(unit) ?? "none in the sweep" }
    let kValues = { (v: Int) in "\(v >> 10)K values" }, kBytes = { (v: Int) in v >= 1 << 20 ? "\(v >> 20) MB" : "\(v >> 10) KB" }
    print("")
    print("── thresholds: derived from the caches vs measured here " + String(repeating: "─", count: 44))
    print("  \(pad("", 22)) \(lpad("derived", 18)) \(lpad("measured", 20))   option")
    print("  \(pad("streaming stores", 22)) \(lpad(kValues(derived.streamingThreshold), 18)) "
          + "\(lpad(show(measured.streaming, kValues), 20))   --streaming-threshold")
    print("  \(pad("thread split", 22)) \(lpad(kValues(derived.parallelThreshold), 18)) "
          + "\(lpad(show(measured.parallel, kValues), 20))   --parallel-threshold")
    print("  \(pad("cache-resident", 22)) \(lpad(kBytes(derived.cacheResidentBytes), 18)) "
          + "\(lpad(show(measured.resident, kBytes), 20))   --cache-resident-bytes")
    // strips: on when they win by ≥ 3 % at every size of the sweep, off when they lose by ≥ 3 % at every one
    let stripsMeasured = strips.allSatisfy { $0.ratio <= 0.97 } ? "on" : strips.allSatisfy { $0.ratio >= 1.03 } ? "off" : "tie"
    print("  \(pad("reduction strips", 22)) \(lpad(BatchNormKernel.reductionStrips ? "on (build)" : "off (build)", 18)) "
          + "\(lpad(stripsMeasured, 20))   --reduction-strips")
    print("  (measured: the smallest size from which the variant wins by ≥ 3 % there and at every larger size;")
    print("   strips: on / off when they win / lose by ≥ 3 % at every size swept, else tie)")
}
