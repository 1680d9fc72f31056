import BatchNormKernels
import KernelSupport
import MatrixKernels
import CBatchNormKitBLAS
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Which code runs the matrix products

/// The implementation of every matrix product of the library (Linear's
/// forward and both backward products, Conv2d's).
public enum MatrixBackend: String, Sendable, CaseIterable {
    /// OpenBLAS's `cblas_sgemm`, with the kernel OpenBLAS chose for this CPU
    /// at load time (its "core", `OPENBLAS_CORETYPE`).
    case openBLAS = "openblas"
    /// MatrixKernels' `MatrixKernel`: 16-lane register tiles, for a CPU
    /// whose 16-lane multiply-adds OpenBLAS's chosen kernel does not use.
    case simd16 = "simd16"
}

/// The library's matrix products and the choice of their backend.
public enum MatrixMultiplication {
    /// The backend in force (default ``machineBackend``). Process-wide, like
    /// ``setThreadCount(_:)``: set it before training, not while layers run.
    /// Products with fewer than 32 output columns always run on OpenBLAS
    /// (`MatrixKernel`'s tiles are 32 columns wide).
    public static var backend: MatrixBackend {
        get { _backend }
        set { _backend = newValue }
    }

    /// The rule's choice for this build and CPU: ``MatrixBackend/simd16`` when
    /// the build targets AVX-512 (`-D BATCHNORMKIT_AVX512`, the Makefile's
    /// native build on such a CPU) and OpenBLAS runs an 8-lane kernel here
    /// (its core is not one of its AVX-512 ones: SkylakeX, Cooperlake,
    /// SapphireRapids); ``MatrixBackend/openBLAS`` otherwise. The case it is
    /// for: an OpenBLAS held to its Haswell kernel (`OPENBLAS_CORETYPE`) on a
    /// Zen 5 core, whose FMA units are 16 lanes wide (`bnkbench`'s
    /// `kernel.gemm.*` cases measure both).
    public static let machineBackend: MatrixBackend = {
        #if BATCHNORMKIT_AVX512
        return openBLASUsesSixteenLanes ? .openBLAS : .simd16
        #else
        return .openBLAS
        #endif
    }()

    /// Whether OpenBLAS's kernel for this CPU is one of its AVX-512 ones.
    public static var openBLASUsesSixteenLanes: Bool {
        ["skylakex", "cooperlake", "sapphirerapids"].contains(String(cString: bnk_blas_get_corename()).lowercased())
    }

    /// Runs `body` with `backend` in force for products on this thread only
    /// (the tests compare the backends while other tests run).
    package static func _withBackend<R>(_ backend: MatrixBackend, _ body: () throws -> R) rethrows -> R {
        try _withThreadValue(backend, key: _backendKey, body)
    }

    /// The backend for a product on this thread.
    static var inForce: MatrixBackend { _threadValue(_backendKey) ?? _backend }

    /// C `(m, n)` = op(A) `(m, k)` · op(B) `(k, n)` (+ C when `accumulate`),
    /// row-major, on the backend in force (layouts as `MatrixKernel.multiply`).
    package static func _multiply(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                  accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if n >= 32, inForce == .simd16 {
            MatrixKernel.multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                  a: a, lda: lda, b: b, ldb: ldb, accumulate: accumulate, c: c, ldc: ldc)
        } else {
            bnk_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k),
                      1, a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
        }
    }
}

nonisolated(unsafe) private var _backend = MatrixMultiplication.machineBackend

private let _backendKey: pthread_key_t = {
    var key = pthread_key_t()
    let made = pthread_key_create(&key, nil)
    precondition(made == 0, "MatrixMultiplication: pthread_key_create failed (\(made))")
    return key
}()
