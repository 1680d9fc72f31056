#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Thread and streaming settings for the calling thread only, inside
/// ``BatchNormKernel/_withSettings(_:_:)``: how the tests run the threaded and
/// streaming paths on tiny batches while other tests, on other threads, keep
/// the process-wide ``BatchNormKernel/threadCount``,
/// ``BatchNormKernel/parallelThreshold`` and ``BatchNormKernel/streamingThreshold``.
package struct _KernelSettings: Sendable {
    package var threadCount: Int
    package var parallelThreshold: Int
    package var streamingThreshold: Int
    /// Overrides of ``BatchNormKernel/cacheResidentBytes`` and
    /// ``BatchNormKernel/reductionStrips`` (nil: the process-wide value).
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

extension BatchNormKernel {
    /// Runs `body` with `settings` in force for kernel calls made on this thread.
    package static func _withSettings<R>(_ settings: _KernelSettings, _ body: () throws -> R) rethrows -> R {
        try _withThreadValue(settings, key: _settingsKey, body)
    }
}

/// The calling thread's scoped settings, or nil (one TLS read per kernel call).
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
package func _threadValue<T>(_ key: pthread_key_t) -> T? {
    pthread_getspecific(key)?.assumingMemoryBound(to: T.self).pointee
}

/// How many parts a call on a batch of `values` values and `n` samples runs
/// in (1: the calling thread only).
@usableFromInline
func _threadParts(values: Int, samples n: Int) -> Int {
    let threads, threshold: Int
    if let s = _scopedSettings() {
        (threads, threshold) = (s.threadCount, s.parallelThreshold)
    } else {
        (threads, threshold) = (_threading.threads, _threading.threshold)
    }
    guard threads > 1, values >= threshold else { return 1 }
    return min(threads, n)
}

/// Whether an elementwise pass writing `values` outputs from `arrays` − 1
/// inputs of as many values uses streaming stores: its working set against
/// the threshold's (stated for 2 arrays, ``BatchNormKernel/streamingThreshold``).
@usableFromInline
func _streams(values: Int, arrays: Int) -> Bool {
    let threshold = _scopedSettings()?.streamingThreshold ?? _streamingValues
    return threshold <= Int.max / 2 && values * arrays >= 2 * threshold
}

/// ``BatchNormKernel/cacheResidentBytes`` in force on this thread.
@usableFromInline
func _residentBytes() -> Int { _scopedSettings()?.cacheResidentBytes ?? _cacheResidentBytes }

/// ``BatchNormKernel/reductionStrips`` in force on this thread.
@usableFromInline
func _usesReductionStrips() -> Bool { _scopedSettings()?.reductionStrips ?? _reductionStrips }

private let _settingsKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
    return key
}()
