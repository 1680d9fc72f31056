// Layers that only change a tensor's shape. BatchNormKit's tensors own their
// storage (there are no views), so each copies its input into a buffer it
// keeps across steps: one pass over memory, no allocation per step.

/// `torch.nn.Flatten()` (start_dim 1, end_dim −1): `(N, d₁, …, dₖ)` →
/// `(N, d₁·…·dₖ)`, row-major order kept. Backward restores the input's shape.
public final class Flatten: Layer {
    public private(set) var isTraining = true
    private var output: Tensor?
    private var gradInput: Tensor?
    private var inputShape: [Int] = []

    public init() {}
    public func setTraining(_ training: Bool) { isTraining = training }

    /// y `(N, ∏ dᵢ)` from x `(N, d₁, …)`; throws `shapeMismatch` for a 0-D input.
    public func forward(_ x: Tensor) throws -> Tensor {
        guard x.shape.count >= 1 else {
            throw BatchNormKitError.shapeMismatch(context: "Flatten", expected: "(N, …)", got: x.shape)
        }
        let n = x.shape[0]
        let y = output._reuse(rows: n, columns: n == 0 ? 0 : x.count / n)
        y._pointer.update(from: x._pointer, count: x.count)
        if inputShape != x.shape { inputShape = x.shape }
        return y
    }

    /// dx of the last input's shape, the same values as dy `(N, ∏ dᵢ)`.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: "Flatten")
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(shape: inputShape)
        dx._pointer.update(from: dy._pointer, count: dy.count)
        return dx
    }
}

/// `torch.nn.Unflatten(1, sizes)`: `(N, ∏ sizes)` → `(N, sizes…)`, e.g. a
/// batch of flattened 28×28 images `(N, 784)` → `(N, 1, 28, 28)` for a
/// ``Conv2d``. Backward flattens the gradient back.
public final class Unflatten: Layer {
    /// The shape of each sample after the layer.
    public let sizes: [Int]
    public private(set) var isTraining = true
    private var output: Tensor?
    private var gradInput: Tensor?
    private let features: Int

    /// - Throws: `invalidArgument` for no sizes or a size below 1.
    public init(sizes: [Int]) throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 }) else {
            throw BatchNormKitError.invalidArgument(name: "sizes", value: "\(sizes)", requirement: "must be one or more sizes ≥ 1")
        }
        self.sizes = sizes
        features = sizes.reduce(1, *)
    }

    public func setTraining(_ training: Bool) { isTraining = training }

    private var context: String { "Unflatten(1, \(sizes))" }

    /// y `(N, sizes…)` from x `(N, ∏ sizes)`.
    public func forward(_ x: Tensor) throws -> Tensor {
        try _checkMatrix(x, features: features, context: context)
        let n = x.shape[0]
        let y: Tensor
        if let kept = output, kept.shape.count == sizes.count + 1, kept.shape[0] == n {
            y = kept
        } else {
            y = output._reuse(shape: [n] + sizes)
        }
        y._pointer.update(from: x._pointer, count: x.count)
        return y
    }

    /// dx `(N, ∏ sizes)` from dy `(N, sizes…)`.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        _ = try _checkGradient(dy, like: output, context: context)
        guard needsInputGradient else { return nil }
        let dx = gradInput._reuse(rows: dy.shape[0], columns: features)
        dx._pointer.update(from: dy._pointer, count: dy.count)
        return dx
    }
}
