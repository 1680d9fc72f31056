// im2col and col2im: a convolution as a matrix product.
//
// For one sample, column matrix row r = (c·k + i)·k + j holds, for every
// output pixel (oh, ow), the input pixel the kernel tap (i, j) of channel c
// sees there: x[c, oh·s + i·d − p, ow·s + j·d − p], or 0 in the padding.
// Then Y (C_out, L) = W (C_out, C·k·k) · col (C·k·k, L) with L = H_out·W_out,
// and the input gradient is col2im(Wᵀ · dY): every column entry added back
// to the input pixel it was copied from (pixels seen by several windows sum).
// Rows of one group's channels are consecutive, so group g's block of
// `col` is rows g·(C/G)·k·k ..< (g + 1)·(C/G)·k·k.

/// Writes the column matrix `(channels·k·k, outHeight·outWidth)` of one
/// sample. x: `(channels, height, width)`; col: `(channels·k·k, L)`.
func _im2col(_ x: UnsafePointer<Float>, _ g: _WindowGeometry, into col: UnsafeMutablePointer<Float>) {
    let k = g.kernel, s = g.stride, outW = g.outWidth, outH = g.outHeight, w = g.width
    for c in 0..<g.channels {
        let plane = x + c * g.inPlane
        for i in 0..<k {
            let rows = g.validOutputs(offset: i, size: g.height, outputs: outH)
            for j in 0..<k {
                let dst = col + ((c * k + i) * k + j) * g.outPlane
                let cols = g.validOutputs(offset: j, size: w, outputs: outW)
                // padding rows above and below the image
                dst.update(repeating: 0, count: rows.lo * outW)
                (dst + rows.hi * outW).update(repeating: 0, count: (outH - rows.hi) * outW)
                for oh in rows.lo..<rows.hi {
                    let out = dst + oh * outW
                    let src = plane + (oh * s + rows.shift) * w + cols.shift
                    out.update(repeating: 0, count: cols.lo)
                    if s == 1 {
                        (out + cols.lo).update(from: src + cols.lo, count: cols.hi - cols.lo)
                    } else {
                        for ow in cols.lo..<cols.hi { out[ow] = src[ow * s] }
                    }
                    (out + cols.hi).update(repeating: 0, count: outW - cols.hi)
                }
            }
        }
    }
}

/// Adds every entry of one sample's column-matrix gradient to the input
/// pixel it came from. col: `(channels·k·k, L)`; dx: `(channels, height,
/// width)`, overwritten (zeroed first).
func _col2im(_ col: UnsafePointer<Float>, _ g: _WindowGeometry, into dx: UnsafeMutablePointer<Float>) {
    let k = g.kernel, s = g.stride, outW = g.outWidth, outH = g.outHeight, w = g.width
    dx.update(repeating: 0, count: g.channels * g.inPlane)
    for c in 0..<g.channels {
        let plane = dx + c * g.inPlane
        for i in 0..<k {
            let rows = g.validOutputs(offset: i, size: g.height, outputs: outH)
            for j in 0..<k {
                let src = col + ((c * k + i) * k + j) * g.outPlane
                let cols = g.validOutputs(offset: j, size: w, outputs: outW)
                for oh in rows.lo..<rows.hi {
                    let grad = src + oh * outW
                    let target = plane + (oh * s + rows.shift) * w + cols.shift
                    if s == 1 {
                        _addInPlace(target + cols.lo, grad + cols.lo, count: cols.hi - cols.lo)
                    } else {
                        for ow in cols.lo..<cols.hi { target[ow * s] += grad[ow] }
                    }
                }
            }
        }
    }
}

/// a[i] += b[i] for i in 0..<count, eight lanes at a time.
@inline(__always)
func _addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let sum = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
            + UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(a + i).storeBytes(of: sum, as: SIMD8<Float>.self)
        i += 8
    }
    while i < count { a[i] += b[i]; i += 1 }
}

/// Σ of `count` values in eight Float lanes, added up at the end. Used for a
/// bias gradient over one output plane (at most a few thousand values).
@inline(__always)
func _sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= count { acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
    var total = acc.sum()
    while i < count { total += p[i]; i += 1 }
    return total
}
