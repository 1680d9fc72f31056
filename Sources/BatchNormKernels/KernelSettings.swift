import KernelSupport

extension BatchNormKernel {
    /// Runs `body` with `settings` in force for kernel calls made on this thread.
    package static func _withSettings<R>(_ settings: _KernelSettings, _ body: () throws -> R) rethrows -> R {
        try _withKernelSettings(settings, body)
    }
}

/// How many parts a call on a batch of `values` values and `n` samples runs
/// in (1: the calling thread only).
@usableFromInline
func _threadParts(values: Int, samples n: Int) -> Int {
    let threads, threshold: Int
    if let s = _scopedSettings() {
        (threads, threshold) = (s.threadCount, s.parallelThreshold)
    } else {
        (threads, threshold) = (_threading.threads, _parallelValues)
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

