// The streaming loops the bounds are measured with (the same SIMD8 width as the kernels).

import CBatchNormKitIntrinsics

@inline(never)
func _streamRead(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var i = 0
    while i + 32 <= n {
        let r = UnsafeRawPointer(p + i)
        a0 += r.load(as: SIMD8<Float>.self)
        a1 += r.load(fromByteOffset: 32, as: SIMD8<Float>.self)
        a2 += r.load(fromByteOffset: 64, as: SIMD8<Float>.self)
        a3 += r.load(fromByteOffset: 96, as: SIMD8<Float>.self)
        i += 32
    }
    return ((a0 + a1) + (a2 + a3)).sum()
}

/// y = a·x + b; `streaming`: non-temporal stores (y 32-byte aligned, as
/// FloatBuffer and the probes' 32-float shares are).
@inline(never)
func _streamScale(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, streaming: Bool = false) {
    let a = SIMD8<Float>(repeating: 1.0001), b = SIMD8<Float>(repeating: 0.5)
    var i = 0
    if streaming {
        while i + 8 <= n { bnk_stream_store8(y + i, UnsafeRawPointer(x + i).load(as: SIMD8<Float>.self) * a + b); i += 8 }
        bnk_stream_fence()
        return
    }
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).load(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: v * a + b, as: SIMD8<Float>.self)
        i += 8
    }
}

@inline(never)
func _streamTriad(_ x: UnsafePointer<Float>, _ z: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                  streaming: Bool = false) {
    let a = SIMD8<Float>(repeating: 1.0001)
    var i = 0
    if streaming {
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).load(as: SIMD8<Float>.self), w = UnsafeRawPointer(z + i).load(as: SIMD8<Float>.self)
            bnk_stream_store8(y + i, v * a + w)
            i += 8
        }
        bnk_stream_fence()
        return
    }
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).load(as: SIMD8<Float>.self)
        let w = UnsafeRawPointer(z + i).load(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: v * a + w, as: SIMD8<Float>.self)
        i += 8
    }
}

/// One pass of a case's memory pattern (``Roofline/patternTime(_:tensorBytes:)``):
/// reads `reads` arrays of n floats (1…3: p, q, r) side by side and, with
/// `output`, writes out = p·a + q + r (the kernels' elementwise passes), else
/// returns the sum (the reductions). The simplest loops that move those bytes.
@inline(never)
func _streamPass(reads: Int, _ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, _ r: UnsafePointer<Float>,
                 _ output: UnsafeMutablePointer<Float>?, _ n: Int, streaming: Bool) -> Float {
    switch reads {
    case 1: return _streamPass(p, p, p, output, n, streaming: streaming, reads: 1)
    case 2: return _streamPass(p, q, p, output, n, streaming: streaming, reads: 2)
    default: return _streamPass(p, q, r, output, n, streaming: streaming, reads: 3)
    }
}

/// ``_streamPass(reads:_:_:_:_:_:streaming:)`` with `reads` a constant after inlining.
@inline(__always)
private func _streamPass(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, _ r: UnsafePointer<Float>,
                         _ output: UnsafeMutablePointer<Float>?, _ n: Int, streaming: Bool, reads: Int) -> Float {
    let a = SIMD8<Float>(repeating: 1.0001)
    @inline(__always) func value(_ i: Int) -> SIMD8<Float> {
        let v = UnsafeRawPointer(p + i).load(as: SIMD8<Float>.self) * a
        if reads == 1 { return v }
        let w = v + UnsafeRawPointer(q + i).load(as: SIMD8<Float>.self)
        return reads == 2 ? w : w + UnsafeRawPointer(r + i).load(as: SIMD8<Float>.self)
    }
    var i = 0
    guard let output else {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        while i + 16 <= n { s0 += value(i); s1 += value(i + 8); i += 16 }
        return (s0 + s1).sum()
    }
    if streaming {
        while i + 8 <= n { bnk_stream_store8(output + i, value(i)); i += 8 }
        bnk_stream_fence()
    } else {
        while i + 8 <= n { UnsafeMutableRawPointer(output + i).storeBytes(of: value(i), as: SIMD8<Float>.self); i += 8 }
    }
    return 0
}
