// The vectors every kernel module of the package is written for, and
// their loads, stores and multiply-adds.
//
// The kernels work on SIMD8<Float>: one AVX register on x86-64 with AVX2,
// two SSE registers in a portable build; `_Wide` (16 lanes, one AVX-512
// register) where a loop keeps many sums in registers. Loads and stores are
// unaligned because rows of an (N, C) batch start at arbitrary offsets.

/// The vector type the kernels are written for.
@usableFromInline package typealias _Vector = SIMD8<Float>

/// Lanes per vector.
@usableFromInline package let _lanes = 8

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
package func _sumLanes(_ v: _Vector) -> Double {
    let lo = v.lowHalf + v.highHalf
    let pair = lo.lowHalf + lo.highHalf
    return Double(pair[0]) + Double(pair[1])
}
