#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// The saturating activations: bounded outputs, gradients that vanish for
// large |x| — the lesson's "some activations oversaturate (e.g. sigmoid)".

/// The logistic sigmoid, `torch.nn.Sigmoid`: y = 1 / (1 + e^(−x)),
/// dx = dy·y·(1 − y). Computed without overflow for any x (e^(−|x|) only).
/// Any shape.
public final class Sigmoid: _PointwiseActivation {
    public override init() {}

    override func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = Self.sigmoid(x[i]) }
    }

    override func derivative(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = dy[i] * y[i] * (1 - y[i]) }
    }

    /// σ(x) from e^(−|x|) ∈ (0, 1]: 1/(1 + e) for x ≥ 0, e/(1 + e) below.
    @inline(__always) static func sigmoid(_ x: Float) -> Float {
        let e = expf(-abs(x))
        return x >= 0 ? 1 / (1 + e) : e / (1 + e)
    }

    /// Whether σ′ at this output is below 5 % of its peak 1/4: y < 0.0133 or
    /// y > 0.9867 (|x| > 4.3). The lab counts such units as saturated.
    @inline(__always) public static func isSaturated(output y: Float) -> Bool { y * (1 - y) < 0.0125 }
}

/// The hyperbolic tangent, `torch.nn.Tanh`: y = tanh x, dx = dy·(1 − y²). Any shape.
public final class Tanh: _PointwiseActivation {
    public override init() {}

    override func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = tanhf(x[i]) }
    }

    override func derivative(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
    }
}
