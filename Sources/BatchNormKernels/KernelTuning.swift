// MARK: - Thresholds derived from the machine's caches
//
// Three thresholds steer the kernels; each is a cache size in disguise:
// - row grouping (``BatchNormKernel/cacheResidentBytes``): a pass whose inputs
//   fit in about two L2s (its own core's L2 plus what the L3 returns at
//   nearly L2 speed) reads several rows per load of its per-feature sums;
//   beyond, with short rows, one row at a time, so the prefetcher sees one
//   sequential stream;
// - streaming stores (``BatchNormKernel/streamingThreshold``): from a pass's
//   working set (inputs and output) of L3/4 + 16·L2 the output would evict
//   the inputs it is made from, so sparing the read-for-ownership pays. The
//   rule falls inside the crossovers measured on Zen 3 and Zen 4
//   (Benchmarks/README.md, "Measurements behind the kernels");
// - the thread split (``BatchNormKernel/parallelThreshold``): a batch that
//   fits one core's L2 four times over (input and output, twice) is faster on
//   the core that holds it than split, as the second core would fetch it from
//   the first core's L2 through the L3 and pay a wake-up on top.
// On a Zen 3 core (32 KB, 512 KB, 32 MB) these rules give the constants that
// were measured there (1 MB, 2²¹ values, 2¹⁹ values: Benchmarks/README.md);
// `bnkbench --tune` measures the crossovers on the running machine and prints
// them beside the derived values.

/// The kernels' three thresholds (bytes for the row grouping, values N·C·L
/// for the other two).
public struct KernelTuning: Sendable, Equatable, CustomStringConvertible {
    /// Bytes a pass may read and still count as cache-resident.
    public var cacheResidentBytes: Int
    /// Values from which a pass over two arrays (one read, one written) uses
    /// streaming stores; a pass over `k` arrays streams from 2/k of it.
    public var streamingThreshold: Int
    /// Values from which a call splits across ``BatchNormKernel/threadCount`` threads.
    public var parallelThreshold: Int

    public init(cacheResidentBytes: Int, streamingThreshold: Int, parallelThreshold: Int) {
        self.cacheResidentBytes = cacheResidentBytes
        self.streamingThreshold = streamingThreshold
        self.parallelThreshold = parallelThreshold
    }

    /// The thresholds for a machine with `caches` (rules at the top of this
    /// file): 2·L2 bytes; a working set of L3/4 + 16·L2 bytes (4·L2 without
    /// an L3), as values of a pass over two arrays; L2 bytes' worth of values
    /// (4·L2 bytes of Float32).
    public static func derived(from caches: MachineCaches) -> KernelTuning {
        let float = MemoryLayout<Float>.size
        let streamingBytes = caches.l3 > 0 ? caches.l3 / 4 + 16 * caches.l2 : 4 * caches.l2
        return KernelTuning(cacheResidentBytes: 2 * caches.l2,
                            streamingThreshold: max(1, streamingBytes / (2 * float)),
                            parallelThreshold: max(1, 4 * caches.l2 / float))
    }

    /// Derived from ``MachineCaches/current``: the defaults in force at start-up.
    public static let machine = derived(from: .current)

    /// The values in force now (the defaults or what a caller set).
    public static var inForce: KernelTuning {
        KernelTuning(cacheResidentBytes: BatchNormKernel.cacheResidentBytes,
                     streamingThreshold: BatchNormKernel.streamingThreshold,
                     parallelThreshold: BatchNormKernel.parallelThreshold)
    }

    /// Sets the three process-wide values (``BatchNormKernel`` statics).
    public static func apply(_ tuning: KernelTuning) {
        BatchNormKernel.cacheResidentBytes = tuning.cacheResidentBytes
        BatchNormKernel.streamingThreshold = tuning.streamingThreshold
        BatchNormKernel.parallelThreshold = tuning.parallelThreshold
    }

    /// E.g. `cache-resident 2 MB, streaming from 2048K values, threads from 1024K values`.
    public var description: String {
        func bytes(_ b: Int) -> String { b >= 1 << 20 && b % (1 << 20) == 0 ? "\(b >> 20) MB" : "\(b >> 10) KB" }
        func values(_ v: Int) -> String { v >= 1 << 10 && v % (1 << 10) == 0 ? "\(v >> 10)K values" : "\(v) values" }
        return "cache-resident \(bytes(cacheResidentBytes)), streaming from \(values(streamingThreshold)), "
            + "threads from \(values(parallelThreshold))"
    }
}

/// Backs ``BatchNormKernel/cacheResidentBytes``.
@usableFromInline nonisolated(unsafe) var _cacheResidentBytes = KernelTuning.machine.cacheResidentBytes

/// Bytes from which a pass's arrays cannot stay in the caches between passes
/// (the running machine's L3; 4·L2 without one): the row grouping reads such
/// a pass one row at a time, whatever its row length.
@usableFromInline let _fromMemoryBytes: Int = {
    let caches = MachineCaches.current
    return caches.l3 > 0 ? caches.l3 : 4 * caches.l2
}()

extension BatchNormKernel {
    /// Bytes a pass may read (all its input arrays together) and still count
    /// as cache-resident for the row grouping of `(N, C)` passes (default
    /// 2·L2 of the running machine, ``KernelTuning/derived(from:)``).
    /// Process-wide, like ``threadCount``.
    public static var cacheResidentBytes: Int {
        get { _cacheResidentBytes }
        set {
            precondition(newValue >= 0, "BatchNormKernel.cacheResidentBytes must be ≥ 0")
            _cacheResidentBytes = newValue
        }
    }
}
