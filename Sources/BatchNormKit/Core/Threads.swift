import BatchNormKernels
import CBatchNormKitBLAS

// MARK: - Thread count of the matrix products

/// Sets how many threads the library uses, like `torch.set_num_threads`:
/// OpenBLAS's pool for every matrix product (Linear's forward and backward)
/// and the normalization kernels' own pool (BatchNorm, LayerNorm, GroupNorm,
/// InstanceNorm), which splits only batches large enough to gain from it
/// (`BatchNormKernel.parallelThreshold` values).
///
/// The count is process-wide: OpenBLAS keeps a single pool. Setting it
/// explicitly keeps timings and results independent of `OPENBLAS_NUM_THREADS`
/// and of the machine's core count (results are reproducible for a given
/// thread count; different counts may differ in the last bits).
///
/// - Parameter count: threads, ≥ 1.
/// - Throws: `BatchNormKitError.invalidArgument` when `count < 1`.
public func setThreadCount(_ count: Int) throws {
    guard count >= 1, count <= Int(Int32.max) else {
        throw BatchNormKitError.invalidArgument(name: "thread count", value: "\(count)", requirement: "must be ≥ 1")
    }
    bnk_blas_set_num_threads(Int32(count))
    BatchNormKernel.threadCount = count
}

/// The number of threads OpenBLAS currently uses for matrix products.
public func threadCount() -> Int { Int(bnk_blas_get_num_threads()) }
