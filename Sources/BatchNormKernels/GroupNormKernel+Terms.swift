import CBatchNormKitIntrinsics
import KernelSupport

// MARK: - GroupNorm's pass 2 terms and how it reads γ, β
//
// The math of pass 2 for the elementwise driver (`_GroupNormalizeTerms`) and
// the two ways γ and β reach it: `_Affine` for a layer with both arrays (no
// test per vector), `_OptionalAffine` for any other case.

/// One row of GroupNorm's pass 2: y = ((x − shift)·s + c)·γ + β per
/// channel, s = invStd, c = −meanOffset·s (pointers at the row's first value,
/// `affine` at its first channel): the normalized value once per element,
/// then one multiply-add with γ and β — no per-channel constants to build per row.
@usableFromInline struct _GroupNormalizeTerms<A: _AffineParameters>: _ElementwiseTerms {
    @usableFromInline let x: UnsafePointer<Float>
    @usableFromInline let affine: A
    @usableFromInline let output: UnsafeMutablePointer<Float>
    @usableFromInline let shift, invStd, offsetTerm: Float

    @inlinable init(x: UnsafePointer<Float>, affine: A, output: UnsafeMutablePointer<Float>,
                    shift: Float, meanOffset: Double, invStd: Double) {
        self.x = x; self.affine = affine; self.output = output
        self.shift = shift; self.invStd = Float(invStd); self.offsetTerm = Float(-meanOffset * invStd)
    }

    @inlinable static var streams: Int { 2 }
    @inlinable @inline(__always)
    func constants(column j: Int) -> (_Vector, _Vector) { (affine.gamma(j), affine.beta(j)) }
    @inlinable @inline(__always)
    func constants(feature f: Int) -> (_Vector, _Vector) {
        (_Vector(repeating: affine.gamma(feature: f)), _Vector(repeating: affine.beta(feature: f)))
    }
    @inlinable @inline(__always)
    func vector(_ k: (_Vector, _Vector), at o: Int) -> _Vector {
        let t = _mulAdd(_load(x + o) - _Vector(repeating: shift), _Vector(repeating: invStd), _Vector(repeating: offsetTerm))
        return _mulAdd(t, k.0, k.1)
    }
    @inlinable @inline(__always)
    func scalar(feature f: Int, at o: Int) -> Float {
        _mulAdd(_mulAdd(x[o] - shift, invStd, offsetTerm), affine.gamma(feature: f), affine.beta(feature: f))
    }
}

/// γ and β as GroupNorm's pass 2 reads them. `_Affine` (both arrays given,
/// the layers' case) loads without a test per vector; `_OptionalAffine`
/// reads 1 and 0 for a missing array — the same arithmetic as a buffer of
/// ones (zeros), to the bit.
@usableFromInline protocol _AffineParameters {
    func gamma(_ j: Int) -> _Vector
    func beta(_ j: Int) -> _Vector
    func gamma(feature f: Int) -> Float
    func beta(feature f: Int) -> Float
    /// The same parameters from channel `channels` on.
    func advanced(by channels: Int) -> Self
}

@usableFromInline struct _Affine: _AffineParameters {
    @usableFromInline let gammaBase, betaBase: UnsafePointer<Float>
    @inlinable init(gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) { (gammaBase, betaBase) = (gamma, beta) }
    @inlinable @inline(__always) func gamma(_ j: Int) -> _Vector { _load(gammaBase + j) }
    @inlinable @inline(__always) func beta(_ j: Int) -> _Vector { _load(betaBase + j) }
    @inlinable @inline(__always) func gamma(feature f: Int) -> Float { gammaBase[f] }
    @inlinable @inline(__always) func beta(feature f: Int) -> Float { betaBase[f] }
    @inlinable @inline(__always) func advanced(by channels: Int) -> _Affine {
        _Affine(gamma: gammaBase + channels, beta: betaBase + channels)
    }
}

@usableFromInline struct _OptionalAffine: _AffineParameters {
    @usableFromInline let gammaBase, betaBase: UnsafePointer<Float>?
    @inlinable init(gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?) { (gammaBase, betaBase) = (gamma, beta) }
    @inlinable @inline(__always) func gamma(_ j: Int) -> _Vector { _load(gammaBase, j, orIdentity: 1) }
    @inlinable @inline(__always) func beta(_ j: Int) -> _Vector { _load(betaBase, j, orIdentity: 0) }
    @inlinable @inline(__always) func gamma(feature f: Int) -> Float { gammaBase?[f] ?? 1 }
    @inlinable @inline(__always) func beta(feature f: Int) -> Float { betaBase?[f] ?? 0 }
    @inlinable @inline(__always) func advanced(by channels: Int) -> _OptionalAffine {
        _OptionalAffine(gamma: gammaBase.map { $0 + channels }, beta: betaBase.map { $0 + channels })
    }
}

/// The vector of γ (or β) at j, or `identity` in every lane when the layer
/// has none: the same arithmetic as a buffer of ones (zeros), to the bit.
@inlinable @inline(__always)
func _load(_ p: UnsafePointer<Float>?, _ j: Int, orIdentity identity: Float) -> _Vector {
    if let p { return _load(p + j) }
    return _Vector(repeating: identity)
}
