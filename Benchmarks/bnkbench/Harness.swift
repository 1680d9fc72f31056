// Timing harness: warm-up, repeated runs, median and min, and a black hole
// the optimizer cannot see through.

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKit

// MARK: - Clock

/// Monotonic seconds.
@inline(__always)
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

// MARK: - Black hole

/// Written by ``blackHole(_:)``; read at exit so the stores are observable.
public var _blackHoleSink: UInt64 = 0

/// Consumes a result so the optimizer cannot delete the work that made it.
@inline(never) @_optimize(none)
public func blackHole(_ x: Float) { _blackHoleSink &+= UInt64(x.bitPattern) }

@inline(never) @_optimize(none)
public func blackHole(_ x: Double) { _blackHoleSink &+= x.bitPattern }

@inline(never) @_optimize(none)
public func blackHole(_ t: Tensor?) {
    guard let t, t.count > 0 else { return }
    _blackHoleSink &+= UInt64(t[flat: t.count - 1].bitPattern)
}

@inline(never) @_optimize(none)
public func blackHole(_ a: [Double]) { if let v = a.last { _blackHoleSink &+= v.bitPattern } }

@inline(never) @_optimize(none)
public func blackHole(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
    if count > 0 { _blackHoleSink &+= UInt64(p[count - 1].bitPattern) }
}

// MARK: - Measuring

/// Median and minimum of repeated runs, in seconds.
struct Timing {
    var median: Double
    var min: Double
    var reps: Int
}

/// How long and how often to repeat a measurement.
struct RepeatPolicy {
    /// Untimed runs first (and at least `warmupTime` seconds of them).
    var warmup: Int
    var warmupTime: Double
    /// Timed runs: at least `minReps` and at least `minTime` seconds, at most `maxReps`
    /// and (after `minReps`) at most `maxTime` seconds.
    var minReps: Int
    var minTime: Double
    var maxReps: Int
    var maxTime: Double

    /// The fast side: enough runs for a stable median.
    static var fast = RepeatPolicy(warmup: 3, warmupTime: 0.02, minReps: 15, minTime: 0.25, maxReps: 20_000, maxTime: 2)
    /// The naive reference: capped, it can take a second per run on big shapes.
    static var reference = RepeatPolicy(warmup: 1, warmupTime: 0, minReps: 3, minTime: 0.2, maxReps: 50, maxTime: 1)
    /// Limit probes (bandwidth, sgemm).
    static var probe = RepeatPolicy(warmup: 3, warmupTime: 0.01, minReps: 15, minTime: 0.12, maxReps: 20_000, maxTime: 1)
    /// --smoke: each case once.
    static let once = RepeatPolicy(warmup: 0, warmupTime: 0, minReps: 1, minTime: 0, maxReps: 1, maxTime: 0)
}

/// Times `body` under `policy`: warm-up, then one clock reading per run.
func measure(_ policy: RepeatPolicy, _ body: () throws -> Void) rethrows -> Timing {
    var warm = 0
    let warmStart = now()
    while warm < policy.warmup || (now() - warmStart < policy.warmupTime && warm < 10 * max(policy.warmup, 1) + 1000) {
        let t0 = now()
        try body(); warm += 1
        // a run longer than the whole budget (the naive reference on big
        // shapes): that run is the measurement
        let t = now() - t0
        if warm == 1 && policy.maxTime > 0 && t >= policy.maxTime { return Timing(median: t, min: t, reps: 1) }
    }
    var times: [Double] = []
    times.reserveCapacity(min(policy.maxReps, 4096))
    let start = now()
    while times.count < policy.maxReps {
        let t0 = now()
        try body()
        times.append(now() - t0)
        let elapsed = now() - start
        if (times.count >= policy.minReps && elapsed >= policy.minTime) || elapsed >= policy.maxTime { break }
    }
    times.sort()
    return Timing(median: median(times), min: times[0], reps: times.count)
}

// MARK: - Aligned scratch memory

/// A page-aligned Float buffer, freed with the object.
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(count: Int, fill: Float = 0) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 4096)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: fill, count: max(count, 1))
    }
    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}
