import CBatchNormKitIntrinsics
import KernelSupport

// The BatchNorm and GroupNorm kernels' block size, register strips and
// streaming stores (the vectors themselves: KernelSupport).

/// Rows per Float32 accumulation block before partial sums are folded into
/// Double. 64 terms keep the Float32 rounding error of a block sum below
/// about 64·2⁻²⁴ relative, so the Double totals stay accurate for any N.
@usableFromInline let _rowsPerBlock = 64

/// Features per register strip of a reduction: 16 `_Wide` per sum.
@usableFromInline let _stripWidth = 16 * _wideLanes

/// Backs ``BatchNormKernel/reductionStrips``: on in builds for AVX-512
/// (`-D BATCHNORMKIT_AVX512`, which the Makefile's native build passes on
/// such a CPU): 32 registers of 16 lanes hold a strip's two sums.
#if BATCHNORMKIT_AVX512
@usableFromInline nonisolated(unsafe) var _reductionStrips = true
#else
@usableFromInline nonisolated(unsafe) var _reductionStrips = false
#endif

extension BatchNormKernel {
    /// Whether a reduction over `(N, C)` rows of 256 ≤ C < 1024 features
    /// (the statistics and the backward sums) sums strips of 256 features in
    /// vector registers across each block of rows, instead of reading rows
    /// through its block sums in L1: for a batch from memory the same sums
    /// bit for bit as the row loop, for a cache-resident one a few ulps
    /// apart (the row loop adds its rows there in two chains). Faster only
    /// where 32 registers of 16 lanes exist, so on by default in builds with
    /// `-D BATCHNORMKIT_AVX512` and off otherwise.
    /// Process-wide, like ``threadCount``.
    public static var reductionStrips: Bool {
        get { _reductionStrips }
        set { _reductionStrips = newValue }
    }
}

// MARK: - Streaming stores

/// Backs ``BatchNormKernel/streamingThreshold``.
@usableFromInline nonisolated(unsafe) var _streamingValues = KernelTuning.machine.streamingThreshold


extension BatchNormKernel {
    /// Values (N·C·L) from which a pass that reads one array and writes one
    /// (normalize) writes with streaming stores; a pass over `k` arrays in all
    /// (dx: dy, x and dx) streams from 2/k of it, as what decides is the pass's
    /// working set: from there the output would evict the inputs it is made
    /// from and sparing its read-for-ownership pays; below it everything stays
    /// in the L3 and normal stores are faster. Default from the running
    /// machine's caches (``KernelTuning/derived(from:)``). Process-wide, like
    /// ``threadCount``.
    public static var streamingThreshold: Int {
        get { _streamingValues }
        set {
            precondition(newValue >= 1, "BatchNormKernel.streamingThreshold must be ≥ 1")
            _streamingValues = newValue
        }
    }
}

/// Floats from `out` to the next 32-byte boundary, where streaming stores
/// start (Float storage is 4-byte aligned): a streamed span is written with
/// normal stores up to there, `bnk_stream_store8` after, normal stores for
/// the tail, and the caller issues one `bnk_stream_fence()` when done.
///
/// A normal store into a line that streaming stores also fill costs a partial
/// write-combining flush; spans shorter than 64 values (4 lines) would pay it
/// on most of their lines, so the drivers write them with normal stores.
@inlinable @inline(__always)
func _streamHead(_ out: UnsafeMutablePointer<Float>) -> Int { (8 - (Int(bitPattern: out) >> 2) & 7) & 7 }
