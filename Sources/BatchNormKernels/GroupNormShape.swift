/// The layout a per-sample normalization kernel (``GroupNormKernel``) reads:
/// row-major Float32 `(N, C, L)` with the C channels split into `groups`
/// groups of K = C / groups consecutive channels. Statistics are taken per
/// (sample, group) over that group's K·L values, which are contiguous in
/// memory: one statistics *row* of the kernels. γ and β are per channel.
///
/// - LayerNorm over the last D values of R rows: `(n: R, c: D, groups: 1, l: 1)`
///   (γ, β per element).
/// - GroupNorm(G, C) on `(N, C, *)`: `(n: N, c: C, groups: G, l: ∏*)`.
/// - InstanceNorm on `(N, C, *)`: groups = C.
public struct GroupNormShape: Hashable, Sendable, CustomStringConvertible {
    /// Batch size N (LayerNorm: the number of normalized rows).
    public var n: Int
    /// Channel count C (LayerNorm: the normalized size D).
    public var c: Int
    /// Groups G; C must be a multiple of G.
    public var groups: Int
    /// Length L of each channel's run (1 for `(N, C)` input).
    public var l: Int

    /// Creates a layout; callers validate sizes (the library throws on bad ones).
    public init(n: Int, c: Int, groups: Int, l: Int = 1) {
        precondition(n >= 0 && c >= 1 && groups >= 1 && c % groups == 0 && l >= 1,
                     "invalid GroupNormShape (\(n), \(c), \(l)) in \(groups) groups")
        self.n = n; self.c = c; self.groups = groups; self.l = l
    }

    /// Channels per group, K = C / G.
    @inlinable public var channelsPerGroup: Int { c / groups }
    /// Values per statistics row, K·L.
    @inlinable public var valuesPerRow: Int { (c / groups) * l }
    /// Statistics rows, N·G.
    @inlinable public var rows: Int { n * groups }
    /// Elements in the batch: N·C·L.
    @inlinable public var elementCount: Int { n * c * l }

    public var description: String {
        (l == 1 ? "(\(n), \(c))" : "(\(n), \(c), \(l))") + (groups == 1 ? "" : " in \(groups) groups")
    }
}
