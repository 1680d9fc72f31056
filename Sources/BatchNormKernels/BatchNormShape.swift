/// The layout of a batch a BatchNorm kernel reads: row-major Float32
/// `(N, C)` or `(N, C, L)`, statistics taken per feature `c` over `N·L` values.
///
/// `(N, C)` is the same as `(N, C, 1)`: the kernels then vectorise across the
/// feature axis, which is contiguous. With `L > 1` each feature is a
/// contiguous run of `L` values per sample and the kernels vectorise along it.
public struct BatchNormShape: Hashable, Sendable, CustomStringConvertible {
    /// Batch size N.
    public var n: Int
    /// Feature count C.
    public var c: Int
    /// Length L of each feature's run (1 for 2-D input).
    public var l: Int

    /// Creates a layout; callers validate sizes (the library throws on bad ones).
    public init(n: Int, c: Int, l: Int = 1) {
        precondition(n >= 0 && c >= 0 && l >= 1, "invalid BatchNormShape (\(n), \(c), \(l))")
        self.n = n; self.c = c; self.l = l
    }

    /// Values per feature: N·L.
    @inlinable public var valuesPerFeature: Int { n * l }
    /// Elements in the batch: N·C·L.
    @inlinable public var elementCount: Int { n * c * l }

    public var description: String { l == 1 ? "(\(n), \(c))" : "(\(n), \(c), \(l))" }
}
