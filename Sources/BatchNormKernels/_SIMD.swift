import CBatchNormKitIntrinsics

// Small SIMD helpers shared by every kernel in this module.
//
// The kernels work on SIMD8<Float>: one AVX register on x86-64 with AVX2,
// two SSE registers in a portable build. Loads and stores are unaligned
// because rows of an (N, C) batch start at arbitrary offsets.

/// The vector type every kernel in this module is written for.
@usableFromInline package typealias _Vector = SIMD8<Float>

/// Lanes per vector.
@usableFromInline package let _lanes = 8

/// Rows per Float32 accumulation block before partial sums are folded into
/// Double. 64 terms keep the Float32 rounding error of a block sum below
/// about 64·2⁻²⁴ relative, so the Double totals stay accurate for any N.
@usableFromInline let _rowsPerBlock = 64

@inlinable @inline(__always)
package func _load(_ p: UnsafePointer<Float>) -> _Vector {
    UnsafeRawPointer(p).loadUnaligned(as: _Vector.self)
}

@inlinable @inline(__always)
package func _store(_ v: _Vector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: _Vector.self)
}

/// a·b + c. Fused only in builds with `-D BATCHNORMKIT_FMA` (the Makefile's
/// native build): in a portable x86-64 build `addingProduct` lowers to one
/// libm `fmaf` call per lane, far slower than a multiply and an add
/// (figures: Benchmarks/README.md, "Measurements behind the kernels").
@inlinable @inline(__always)
package func _mulAdd(_ a: _Vector, _ b: _Vector, _ c: _Vector) -> _Vector {
    #if BATCHNORMKIT_FMA
    return c.addingProduct(a, b)
    #else
    return a * b + c
    #endif
}

/// The same on one Float, for the scalar heads and tails of the vector
/// loops: an element gives the same bits whichever path computes it — a
/// streaming pass's head depends on the output's alignment, a split on the
/// thread count — and the fused ReLU backward, which recomputes the
/// forward's pre-activation, gets the forward's bits.
@inlinable @inline(__always)
package func _mulAdd(_ a: Float, _ b: Float, _ c: Float) -> Float {
    #if BATCHNORMKIT_FMA
    return c.addingProduct(a, b)
    #else
    return a * b + c
    #endif
}

/// 16 lanes (one AVX-512 register): the reductions' register strips.
@usableFromInline package typealias _Wide = SIMD16<Float>
@usableFromInline package let _wideLanes = 16

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

@inlinable @inline(__always)
package func _loadWide(_ p: UnsafePointer<Float>) -> _Wide { UnsafeRawPointer(p).loadUnaligned(as: _Wide.self) }

@inlinable @inline(__always)
package func _storeWide(_ v: _Wide, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: _Wide.self) }

/// The same on 16 lanes. One overload per type, not one generic over SIMD:
/// SIMD code generic over the width runs lane by lane unless specialised.
@inlinable @inline(__always)
package func _mulAdd(_ a: _Wide, _ b: _Wide, _ c: _Wide) -> _Wide {
    #if BATCHNORMKIT_FMA
    return c.addingProduct(a, b)
    #else
    return a * b + c
    #endif
}

/// Horizontal sum of a vector's lanes, in Double.
@inlinable @inline(__always)
func _sumLanes(_ v: _Vector) -> Double {
    let lo = v.lowHalf + v.highHalf
    let pair = lo.lowHalf + lo.highHalf
    return Double(pair[0]) + Double(pair[1])
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
