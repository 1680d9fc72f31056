/// The fast BatchNorm kernels: pure Swift, SIMD over the contiguous axis,
/// unsafe pointers in the hot loops, no allocation per call.
///
/// Every kernel has a naive twin of the same name in `BatchNormReference`
/// (Double accumulation, plain loops): the tests' oracle and the benchmarks'
/// baseline. A training-mode forward is
/// ``moments(_:shape:into:)`` → ``normalizeAffine(_:shape:shift:scale:bias:output:)``
/// (plus ``updateRunningStatistics(runningMean:runningVar:moments:momentum:numBatchesTracked:)``);
/// the backward is ``backwardReduce(gradOutput:input:shape:shift:sumGrad:sumGradShifted:scratch:)``
/// → ``backwardInput(gradOutput:input:shape:shift:gradScale:inputScale:constant:gradInput:)``.
public enum BatchNormKernel {}
