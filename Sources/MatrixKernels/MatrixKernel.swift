// MatrixKernel: the matrix product of Linear and Conv2d, for machines where
// OpenBLAS's kernel leaves half the vector width unused.
//
// An OpenBLAS held to its Haswell kernel (AVX2, 8 lanes; `OPENBLAS_CORETYPE`,
// as on the Zen 5 machines here) leaves half of a Zen 5 core's FMA width
// idle: the core runs a 16-lane multiply-add as fast as an 8-lane one
// (`bnkbench`'s FMA peak, measured on both widths). This is a plain
// Goto/BLIS-style sgemm on 16-lane vectors: B packed in panels of
// 32 columns that stay in L1 across a block of A, A packed in panels of 8
// rows, one 8 × 32 register tile (16 accumulators) per panel pair.
// Whether the library uses it instead of OpenBLAS is the caller's choice
// (BatchNormKit's `MatrixMultiplication.backend`).
//
// Loop shapes (the block sizes below), outermost first:
//   columns of C in blocks of 512   (B block: 256 × 512 floats = 512 KB, in L2)
//   the sum index in blocks of 256  (B packed once per column and sum block)
//   rows of C in blocks of 128      (A block: 128 × 256 floats = 128 KB, in L2)
//   32-column panels of B           (one panel: 32 KB, in L1)
//   8-row panels of A → one 8 × 32 tile of C

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KernelSupport

/// The row-major single-precision matrix product `C = op(A)·op(B) (+ C)`,
/// with its Double twin `MatrixReference.multiply` in BatchNormReference.
public enum MatrixKernel {}

/// Rows and columns of the register tile; the sum-index, row and column
/// blocks that keep the packed panels in L1 and L2.
let _tileRows = 8
let _tileColumns = 2 * _wideLanes
let _sumBlock = 256, _rowBlock = 128, _columnBlock = 512

extension MatrixKernel {
    /// `c` `(m, n)` = op(`a`) `(m, k)` · op(`b`) `(k, n)`, plus `c`'s old values when
    /// `accumulate` (BLAS's α = 1 and β = 1 or 0; with β = 0, `c` is only
    /// written, so NaN in it does not propagate).
    ///
    /// - op(a)[i, p] = `a[i·lda + p]`, or `a[p·lda + i]` when `transposeA`.
    /// - op(b)[p, j] = `b[p·ldb + j]`, or `b[j·ldb + p]` when `transposeB`.
    /// - `c[i, j]` at `c[i·ldc + j]`.
    ///
    /// Each element is one Float32 chain of multiply-adds over `p` in order
    /// (blocks of 256 added to `c` in turn), like a BLAS. Splits the columns
    /// (or, for narrow products, the rows) across ``BatchNormKernel/threadCount``
    /// threads from 2²¹ multiply-adds; no heap allocation after a thread's
    /// first call (its packing workspace, 640 KB, is kept per thread).
    public static func multiply(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        var job = _MatrixJob(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                             a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc, parts: 1,
                             splitsColumns: true)
        let threads = _scopedSettings()?.threadCount ?? _threading.threads
        if threads > 1, m * n * k >= 1 << 21 {
            if n >= 2 * _tileColumns * threads { job.parts = threads }
            else if m >= 2 * _tileRows * threads { job.parts = threads; job.splitsColumns = false }
        }
        guard job.parts > 1 else { job.run(part: 0); return }
        _ = _threading.acquire(bytes: 0)
        defer { _threading.release() }
        _threading.run(&job, parts: job.parts) { raw, part in
            raw.assumingMemoryBound(to: _MatrixJob.self).pointee.run(part: part)
        }
    }
}

/// One call's operands; `run(part:)` computes part `part` of `parts` of C
/// (a range of columns in whole tiles, or of rows in whole tiles).
struct _MatrixJob {
    var transposeA: Bool, transposeB: Bool
    var m: Int, n: Int, k: Int
    var a: UnsafePointer<Float>, lda: Int
    var b: UnsafePointer<Float>, ldb: Int
    var accumulate: Bool
    var c: UnsafeMutablePointer<Float>, ldc: Int
    var parts: Int
    var splitsColumns: Bool

    func run(part: Int) {
        let units = splitsColumns ? (n + _tileColumns - 1) / _tileColumns : (m + _tileRows - 1) / _tileRows
        let share = _partRange(part, of: parts, units)
        let unit = splitsColumns ? _tileColumns : _tileRows
        let lower = share.lowerBound * unit, upper = min(share.upperBound * unit, splitsColumns ? n : m)
        guard lower < upper else { return }
        let w = _MatrixWorkspace.current
        if splitsColumns { multiplyBlocks(rows: 0..<m, columns: lower..<upper, w) }
        else { multiplyBlocks(rows: lower..<upper, columns: 0..<n, w) }
    }

    /// C[rows, columns] in the block loops of the file's header.
    func multiplyBlocks(rows: Range<Int>, columns: Range<Int>, _ w: _MatrixWorkspace) {
        for jc in stride(from: columns.lowerBound, to: columns.upperBound, by: _columnBlock) {
            let nc = min(_columnBlock, columns.upperBound - jc)
            for pc in stride(from: 0, to: k, by: _sumBlock) {
                let kc = min(_sumBlock, k - pc)
                _packB(transposeB, b, ldb, rows: pc, kc, columns: jc, nc, into: w.packedB, scratch: w.transposeScratch)
                let adds = accumulate || pc > 0
                for ic in stride(from: rows.lowerBound, to: rows.upperBound, by: _rowBlock) {
                    let mc = min(_rowBlock, rows.upperBound - ic)
                    _packA(transposeA, a, lda, rows: ic, mc, columns: pc, kc, into: w.packedA, scratch: w.transposeScratch)
                    for jr in stride(from: 0, to: nc, by: _tileColumns) {
                        let panelB = w.packedB + jr * kc
                        let tileColumns = min(_tileColumns, nc - jr)
                        for ir in stride(from: 0, to: mc, by: _tileRows) {
                            let panelA = w.packedA + ir * kc
                            let tileRows = min(_tileRows, mc - ir)
                            let out = c + (ic + ir) * ldc + jc + jr
                            if tileRows == _tileRows && tileColumns == _tileColumns {
                                _multiplyTile(kc, panelA, panelB, out, ldc, adds: adds)
                            } else {
                                // an edge tile: the whole tile into scratch, then its valid part
                                _multiplyTile(kc, panelA, panelB, w.tile, _tileColumns, adds: false)
                                for r in 0..<tileRows {
                                    let src = w.tile + r * _tileColumns, dst = out + r * ldc
                                    for j in 0..<tileColumns { dst[j] = adds ? dst[j] + src[j] : src[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A thread's packing buffers (A block, B block, one scratch tile, 32
/// vectors for B's transposes), allocated on its first product and freed
/// when the thread ends.
struct _MatrixWorkspace {
    var packedA: UnsafeMutablePointer<Float>
    var packedB: UnsafeMutablePointer<Float>
    var tile: UnsafeMutablePointer<Float>
    var transposeScratch: UnsafeMutablePointer<_Wide>

    static let floats = (_rowBlock * _sumBlock, _sumBlock * _columnBlock, _tileRows * _tileColumns + 2 * _wideLanes * _wideLanes)

    static var current: _MatrixWorkspace {
        let raw: UnsafeMutableRawPointer
        if let existing = pthread_getspecific(_matrixWorkspaceKey) {
            raw = existing
        } else {
            let (a, b, t) = floats
            // posix_memalign, not Swift's allocate: the key's destructor frees it with free()
            var p: UnsafeMutableRawPointer? = nil
            guard posix_memalign(&p, 64, (a + b + t) * MemoryLayout<Float>.stride) == 0, let p else {
                fatalError("MatrixKernel: cannot allocate its \((a + b + t) * 4 / 1024) KB packing workspace")
            }
            pthread_setspecific(_matrixWorkspaceKey, p)
            raw = p
        }
        let base = raw.assumingMemoryBound(to: Float.self)
        let tile = base + floats.0 + floats.1
        // the transposes' vectors after the tile, 64-byte aligned (the tile is 256 floats)
        let vectors = UnsafeMutableRawPointer(tile + _tileRows * _tileColumns).assumingMemoryBound(to: _Wide.self)
        return _MatrixWorkspace(packedA: base, packedB: base + floats.0, tile: tile, transposeScratch: vectors)
    }
}

private let _matrixWorkspaceKey: pthread_key_t = {
    var key = pthread_key_t()
    let made = pthread_key_create(&key) { free($0) }
    precondition(made == 0, "MatrixKernel: pthread_key_create failed (\(made))")
    return key
}()
