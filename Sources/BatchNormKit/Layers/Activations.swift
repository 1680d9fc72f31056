#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// max(0, x) elementwise, `torch.nn.ReLU`. Any shape in, same shape out.
public final class ReLU: Layer {
    public private(set) var isTraining = true
    private var output: Tensor?
    private var gradInput: Tensor?

    public init() {}
    public func setTraining(_ training: Bool) { isTraining = training }

    /// y = max(0, x).
    public func forward(_ x: Tensor) throws -> Tensor {
        let y = output._reuse(sameShapeAs: x)
        let src = x._pointer, dst = y._pointer, n = x.count
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: v.replacing(with: 0, where: v .< 0), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { dst[i] = src[i] < 0 ? 0 : src[i]; i += 1 }   // as the vectors: NaN stays NaN
        return y
    }

    /// dx = dy where y > 0, else 0.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        let y = try _checkGradient(dy, like: output, context: "ReLU")
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(sameShapeAs: dy)
        let g = dy._pointer, out = y._pointer, d = dx._pointer, n = dy.count
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            let mask = UnsafeRawPointer(out + i).loadUnaligned(as: SIMD8<Float>.self) .> 0
            UnsafeMutableRawPointer(d + i).storeBytes(of: SIMD8<Float>().replacing(with: v, where: mask), as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { d[i] = out[i] > 0 ? g[i] : 0; i += 1 }
        return dx
    }
}

/// Softmax over the last axis of `(N, K)`, `torch.nn.Softmax(dim: 1)`:
/// yᵢ = exp(xᵢ − max x) / Σⱼ exp(xⱼ − max x); backward dx = y ⊙ (dy − Σ dy⊙y).
/// For training, prefer ``CrossEntropyLoss`` on logits (fused, stable).
public final class Softmax: Layer {
    private let rows = _RowwiseSoftmax(log: false, name: "Softmax")
    public init() {}
    public var isTraining: Bool { rows.isTraining }
    public func setTraining(_ training: Bool) { rows.isTraining = training }
    /// y `(N, K)` from x `(N, K)`; throws on any other rank or K = 0.
    public func forward(_ x: Tensor) throws -> Tensor { try rows.forward(x) }
    /// dx `(N, K)` from dy `(N, K)` of the last forward.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try rows.backward(dy, needsInputGradient: needsInputGradient)
    }
}

/// Log-softmax over the last axis of `(N, K)`, `torch.nn.LogSoftmax(dim: 1)`:
/// yᵢ = xᵢ − max x − log Σⱼ exp(xⱼ − max x); backward dx = dy − exp(y)·Σ dy.
public final class LogSoftmax: Layer {
    private let rows = _RowwiseSoftmax(log: true, name: "LogSoftmax")
    public init() {}
    public var isTraining: Bool { rows.isTraining }
    public func setTraining(_ training: Bool) { rows.isTraining = training }
    public func forward(_ x: Tensor) throws -> Tensor { try rows.forward(x) }
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        try rows.backward(dy, needsInputGradient: needsInputGradient)
    }
}

/// The shared forward/backward pair of ``Softmax`` and ``LogSoftmax``.
final class _RowwiseSoftmax {
    let log: Bool
    let name: String
    var isTraining = true
    private var output: Tensor?
    private var gradInput: Tensor?

    init(log: Bool, name: String) { self.log = log; self.name = name }

    func forward(_ x: Tensor) throws -> Tensor {
        guard x.shape.count == 2, x.shape[1] > 0 else {
            throw BatchNormKitError.shapeMismatch(context: name, expected: "(N, K) with K ≥ 1", got: x.shape)
        }
        let y = output._reuse(sameShapeAs: x)
        _rowSoftmax(x._pointer, rows: x.shape[0], columns: x.shape[1], log: log, into: y._pointer)
        return y
    }

    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        let y = try _checkGradient(dy, like: output, context: name)
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(sameShapeAs: dy)
        let k = dy.shape[1]
        for row in 0..<dy.shape[0] {
            let g = dy._pointer + row * k, out = y._pointer + row * k, d = dx._pointer + row * k
            if log {
                var total: Float = 0                       // Σ dy
                for j in 0..<k { total += g[j] }
                for j in 0..<k { d[j] = g[j] - expf(out[j]) * total }
            } else {
                var dot: Float = 0                         // Σ dy⊙y
                for j in 0..<k { dot += g[j] * out[j] }
                for j in 0..<k { d[j] = out[j] * (g[j] - dot) }
            }
        }
        return dx
    }
}

/// Row-wise (log-)softmax with the max subtracted first, so no exp overflows.
/// x, out: `(rows, columns)`.
func _rowSoftmax(_ x: UnsafePointer<Float>, rows: Int, columns k: Int, log: Bool, into out: UnsafeMutablePointer<Float>) {
    for row in 0..<rows {
        let src = x + row * k, dst = out + row * k
        var top = -Float.infinity
        for j in 0..<k { top = max(top, src[j]) }
        var z: Float = 0
        for j in 0..<k { let e = expf(src[j] - top); dst[j] = e; z += e }
        if log {
            let logZ = top + logf(z)
            for j in 0..<k { dst[j] = src[j] - logZ }
        } else {
            let inv = 1 / z
            for j in 0..<k { dst[j] *= inv }
        }
    }
}
