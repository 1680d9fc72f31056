// MatrixKernel's inner loops: the packing of A and B into panels, and the
// 8 × 32 register tile (16 accumulators of 16 lanes, 2 loads of B and 8
// broadcasts of A per 16 multiply-adds).

import KernelSupport

/// Packs op(A)[rows..<rows+mc, columns..<columns+kc] into panels of
/// `_tileRows` rows: panel r at `dst + r·_tileRows·kc`, holding for each p the
/// panel's 8 values of column p (rows past mc are 0). `scratch`: 32 vectors
/// for the 16 × 16 transposes.
func _packA(_ transposed: Bool, _ a: UnsafePointer<Float>, _ lda: Int,
            rows i0: Int, _ mc: Int, columns p0: Int, _ kc: Int, into dst: UnsafeMutablePointer<Float>,
            scratch: UnsafeMutablePointer<_Wide>) {
    var start = 0
    if !transposed {
        // op(A)[i, p] = a[i·lda + p]: two whole panels (16 rows) at a time,
        // 16 × 16 blocks read along a's rows and transposed in registers
        while start + 2 * _tileRows <= mc {
            let out = dst + start * kc, next = out + _tileRows * kc
            var p = 0
            while p + _wideLanes <= kc {
                for r in 0..<_wideLanes { scratch[r] = _loadWide(a + (i0 + start + r) * lda + p0 + p) }
                _transpose16(scratch, scratch + _wideLanes)
                for q in 0..<_wideLanes {
                    _store(scratch[q].lowHalf, out + (p + q) * _tileRows)
                    _store(scratch[q].highHalf, next + (p + q) * _tileRows)
                }
                p += _wideLanes
            }
            for r in 0..<(2 * _tileRows) {
                let src = a + (i0 + start + r) * lda + p0, o = (r < _tileRows ? out : next) + r % _tileRows
                for q in p..<kc { o[q * _tileRows] = src[q] }
            }
            start += 2 * _tileRows
        }
    }
    for panel in stride(from: start, to: mc, by: _tileRows) {
        let out = dst + panel * kc, rows = min(_tileRows, mc - panel), first = i0 + panel
        if transposed {
            // op(A)[i, p] = a[p·lda + i]: each p's 8 values are adjacent
            for p in 0..<kc {
                let src = a + (p0 + p) * lda + first, o = out + p * _tileRows
                if rows == _tileRows {
                    _store(_load(src), o)
                } else {
                    for r in 0..<_tileRows { o[r] = r < rows ? src[r] : 0 }
                }
            }
        } else {
            // the last panel or two: read each row along p, write every 8th value
            for r in 0..<_tileRows {
                guard r < rows else {
                    for p in 0..<kc { out[p * _tileRows + r] = 0 }
                    continue
                }
                let src = a + (first + r) * lda + p0
                for p in 0..<kc { out[p * _tileRows + r] = src[p] }
            }
        }
    }
}

/// Packs op(B)[rows..<rows+kc, columns..<columns+nc] into panels of
/// `_tileColumns` columns: panel q at `dst + q·_tileColumns·kc`, holding for
/// each p the panel's 32 values of row p (columns past nc are 0).
/// `scratch`: 32 vectors for the 16 × 16 transposes.
func _packB(_ transposed: Bool, _ b: UnsafePointer<Float>, _ ldb: Int,
            rows p0: Int, _ kc: Int, columns j0: Int, _ nc: Int, into dst: UnsafeMutablePointer<Float>,
            scratch: UnsafeMutablePointer<_Wide>) {
    for panel in stride(from: 0, to: nc, by: _tileColumns) {
        let out = dst + panel * kc, columns = min(_tileColumns, nc - panel), first = j0 + panel
        if transposed {
            // op(B)[p, j] = b[j·ldb + p]: b's rows are the panel's columns.
            // Whole panels: 16 × 16 blocks read along b's rows, transposed in registers.
            var p = 0
            if columns == _tileColumns {
                while p + _wideLanes <= kc {
                    for half in 0..<2 {
                        for j in 0..<_wideLanes {
                            scratch[j] = _loadWide(b + (first + half * _wideLanes + j) * ldb + p0 + p)
                        }
                        _transpose16(scratch, scratch + _wideLanes)
                        for q in 0..<_wideLanes {
                            _storeWide(scratch[q], out + (p + q) * _tileColumns + half * _wideLanes)
                        }
                    }
                    p += _wideLanes
                }
            }
            // the rest (a partial panel, the last p < 16): one value at a time
            for j in 0..<_tileColumns {
                let src = b + (first + j) * ldb + p0
                for q in p..<kc { out[q * _tileColumns + j] = j < columns ? src[q] : 0 }
            }
        } else {
            // op(B)[p, j] = b[p·ldb + j]: each p's 32 values are adjacent
            for p in 0..<kc {
                let src = b + (p0 + p) * ldb + first, o = out + p * _tileColumns
                if columns == _tileColumns {
                    _storeWide(_loadWide(src), o)
                    _storeWide(_loadWide(src + _wideLanes), o + _wideLanes)
                } else {
                    for j in 0..<_tileColumns { o[j] = j < columns ? src[j] : 0 }
                }
            }
        }
    }
}

/// Transposes the 16 × 16 block in `rows` (vector i = row i), using `spare`
/// (16 vectors) as the other buffer. One round pairs rows 2i and 2i + 1 and
/// keeps their even lanes as row i and their odd lanes as row 8 + i: element
/// (r, c) moves to (c₀r₃r₂r₁, r₀c₃c₂c₁), the 8 bits of (r, c) rotated right
/// by one. Four rounds rotate by four: (r, c) → (c, r).
@inline(__always)
func _transpose16(_ rows: UnsafeMutablePointer<_Wide>, _ spare: UnsafeMutablePointer<_Wide>) {
    var from = rows, to = spare
    for _ in 0..<4 {
        for i in 0..<8 {
            let pair = SIMD32<Float>(lowHalf: from[2 * i], highHalf: from[2 * i + 1])
            to[i] = pair.evenHalf
            to[8 + i] = pair.oddHalf
        }
        swap(&from, &to)
    }
}

/// c[0..<8, 0..<32] (row stride ldc) = Σ_p a-panel[p] ⊗ b-panel[p], plus
/// c's old values when `adds`. Each element is one chain of multiply-adds in
/// p order.
func _multiplyTile(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                   _ c: UnsafeMutablePointer<Float>, _ ldc: Int, adds: Bool) {
    var c00 = _Wide(), c01 = _Wide(), c10 = _Wide(), c11 = _Wide()
    var c20 = _Wide(), c21 = _Wide(), c30 = _Wide(), c31 = _Wide()
    var c40 = _Wide(), c41 = _Wide(), c50 = _Wide(), c51 = _Wide()
    var c60 = _Wide(), c61 = _Wide(), c70 = _Wide(), c71 = _Wide()
    var pa = a, pb = b
    for _ in 0..<kc {
        let b0 = _loadWide(pb), b1 = _loadWide(pb + _wideLanes)
        @inline(__always) func row(_ r: Int, _ x0: inout _Wide, _ x1: inout _Wide) {
            let s = _Wide(repeating: pa[r])
            x0 = _mulAdd(s, b0, x0); x1 = _mulAdd(s, b1, x1)
        }
        row(0, &c00, &c01); row(1, &c10, &c11); row(2, &c20, &c21); row(3, &c30, &c31)
        row(4, &c40, &c41); row(5, &c50, &c51); row(6, &c60, &c61); row(7, &c70, &c71)
        pa += _tileRows; pb += _tileColumns
    }
    @inline(__always) func put(_ r: Int, _ x0: _Wide, _ x1: _Wide) {
        let o = c + r * ldc
        _storeWide(adds ? _loadWide(o) + x0 : x0, o)
        _storeWide(adds ? _loadWide(o + _wideLanes) + x1 : x1, o + _wideLanes)
    }
    put(0, c00, c01); put(1, c10, c11); put(2, c20, c21); put(3, c30, c31)
    put(4, c40, c41); put(5, c50, c51); put(6, c60, c61); put(7, c70, c71)
}
