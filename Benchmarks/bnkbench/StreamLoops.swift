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
