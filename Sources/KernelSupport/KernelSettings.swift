#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thread and streaming settings for the calling thread only, inside
/// ``_withKernelSettings(_:_:)`` (BatchNormKernels' `BatchNormKernel._withSettings`):
/// how the tests run the threaded and streaming paths on tiny batches while
/// other tests, on other threads, keep the process-wide
/// `BatchNormKernel.threadCount`, `.parallelThreshold` and `.streamingThreshold`.
@usableFromInline
package struct _KernelSettings: Sendable {
    package var threadCount: Int
    package var parallelThreshold: Int
    package var streamingThreshold: Int
    /// Overrides of `BatchNormKernel.cacheResidentBytes` and
    /// `.reductionStrips` (nil: the process-wide value).
    package var cacheResidentBytes: Int?
    package var reductionStrips: Bool?

    package init(threadCount: Int, parallelThreshold: Int, streamingThreshold: Int,
                 cacheResidentBytes: Int? = nil, reductionStrips: Bool? = nil) {
        precondition(threadCount >= 1 && parallelThreshold >= 1 && streamingThreshold >= 1, "kernel settings must be ≥ 1")
        self.threadCount = threadCount
        self.parallelThreshold = parallelThreshold
        self.streamingThreshold = streamingThreshold
        self.cacheResidentBytes = cacheResidentBytes
        self.reductionStrips = reductionStrips
    }
}

/// Runs `body` with `settings` in force for kernel calls made on this
/// thread (every kernel module reads them through ``_scopedSettings()``).
package func _withKernelSettings<R>(_ settings: _KernelSettings, _ body: () throws -> R) rethrows -> R {
    try _withThreadValue(settings, key: _settingsKey, body)
}

/// The calling thread's scoped settings, or nil (one TLS read per kernel
/// call). Inlinable, as it was inside the kernels' module: a call here in a
/// kernel's prologue changed the register allocation of its loops.
@inlinable
package func _scopedSettings() -> _KernelSettings? { _threadValue(_settingsKey) }

/// Runs `body` with `value` readable on this thread through `key`
/// (``_threadValue(_:)``), the previous value restored after: the package's
/// one way to scope a setting to a thread (kernel settings here,
/// BatchNormKit's matrix backend).
package func _withThreadValue<T, R>(_ value: T, key: pthread_key_t, _ body: () throws -> R) rethrows -> R {
    let previous = pthread_getspecific(key)
    var scoped = value
    return try withUnsafeMutablePointer(to: &scoped) { p in
        pthread_setspecific(key, p)
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}

/// The value ``_withThreadValue(_:key:_:)`` scoped to this thread under `key`, or nil.
@inlinable
package func _threadValue<T>(_ key: pthread_key_t) -> T? {
    pthread_getspecific(key)?.assumingMemoryBound(to: T.self).pointee
}

@usableFromInline let _settingsKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
    return key
}()
