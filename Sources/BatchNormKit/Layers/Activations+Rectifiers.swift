#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// The rectifier family beyond ReLU: LeakyReLU, SELU, GELU.

/// `torch.nn.LeakyReLU`: y = x for x > 0, else negativeSlope·x;
/// dx = dy for x > 0, else negativeSlope·dy (PyTorch's choice at x = 0). Any shape.
public final class LeakyReLU: _PointwiseActivation {
    /// The slope for x ≤ 0 (PyTorch's default 0.01).
    public let negativeSlope: Float

    /// - Parameter negativeSlope: finite; default 0.01.
    public init(negativeSlope: Float = 0.01) throws {
        guard negativeSlope.isFinite else {
            throw BatchNormKitError.invalidArgument(name: "negativeSlope", value: "\(negativeSlope)", requirement: "must be finite")
        }
        self.negativeSlope = negativeSlope
    }

    override var name: String { "LeakyReLU(\(negativeSlope))" }

    override func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        let slope = negativeSlope
        for i in 0..<count { y[i] = x[i] > 0 ? x[i] : x[i] * slope }
    }

    override func derivative(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, count: Int) {
        let slope = negativeSlope
        for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : dy[i] * slope }
    }
}

/// Scaled exponential linear unit, `torch.nn.SELU` (Klambauer et al., 2017,
/// "Self-Normalizing Neural Networks", arXiv:1706.02515):
///
///     y = λ·x for x > 0,  λ·α·(eˣ − 1) otherwise;   dx = dy·λ, or dy·λ·α·eˣ
///
/// with the paper's fixed point λ ≈ 1.0507, α ≈ 1.6733, which keep zero mean
/// and unit variance through a layer with LeCun-normal weights. Pair with
/// ``AlphaDropout``. Any shape.
public final class SELU: _PointwiseActivation {
    /// λ, the paper's (and PyTorch's) scale.
    public static let scale: Float = 1.0507009873554804934193349852946
    /// α, the paper's (and PyTorch's) negative saturation before scaling.
    public static let alpha: Float = 1.6732632423543772848170429916717

    public override init() {}

    override func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        let l = Self.scale, la = Self.scale * Self.alpha
        for i in 0..<count { y[i] = x[i] > 0 ? l * x[i] : la * expm1f(x[i]) }
    }

    override func derivative(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, count: Int) {
        let l = Self.scale, la = Self.scale * Self.alpha
        for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] * l : dy[i] * la * expf(x[i]) }
    }
}

/// Gaussian error linear unit, `torch.nn.GELU` (Hendrycks & Gimpel, 2016,
/// arXiv:1606.08415). Exact (PyTorch's default `approximate='none'`):
///
///     y = x·Φ(x) = ½x(1 + erf(x/√2)),   dx = dy·(Φ(x) + x·φ(x)),  φ(x) = e^(−x²/2)/√(2π)
///
/// `approximate: .tanh` (PyTorch's `approximate='tanh'`):
/// y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³),
/// dx = dy·(½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)). Any shape.
public final class GELU: _PointwiseActivation {
    /// PyTorch's `approximate` argument.
    public enum Approximation: String, Sendable, CaseIterable { case none, tanh }
    /// Which formula this layer computes.
    public let approximate: Approximation

    /// - Parameter approximate: `.none` (exact erf form, default) or `.tanh`.
    public init(approximate: Approximation = .none) { self.approximate = approximate }

    override var name: String { "GELU(approximate: \(approximate.rawValue))" }

    static let invSqrt2: Float = 0.70710678118654752440
    static let invSqrt2Pi: Float = 0.39894228040143267794
    static let sqrt2OverPi: Float = 0.79788456080286535588
    static let cubic: Float = 0.044715

    override func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        switch approximate {
        case .none:
            for i in 0..<count { y[i] = 0.5 * x[i] * (1 + erff(x[i] * Self.invSqrt2)) }
        case .tanh:
            for i in 0..<count {
                let v = x[i]
                y[i] = 0.5 * v * (1 + tanhf(Self.sqrt2OverPi * (v + Self.cubic * v * v * v)))
            }
        }
    }

    override func derivative(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                             into dx: UnsafeMutablePointer<Float>, count: Int) {
        switch approximate {
        case .none:
            for i in 0..<count {
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * Self.invSqrt2)), pdf = Self.invSqrt2Pi * expf(-0.5 * v * v)
                dx[i] = dy[i] * (cdf + v * pdf)
            }
        case .tanh:
            for i in 0..<count {
                let v = x[i]
                let t = tanhf(Self.sqrt2OverPi * (v + Self.cubic * v * v * v))
                let du = Self.sqrt2OverPi * (1 + 3 * Self.cubic * v * v)
                let sech2 = 1 - t * t   // 0 once tanh saturates, where du may overflow to ∞
                dx[i] = dy[i] * (0.5 * (1 + t) + (sech2 == 0 ? 0 : 0.5 * v * sech2 * du))
            }
        }
    }
}
