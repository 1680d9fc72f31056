/// A trainable tensor and its gradient, like `torch.nn.Parameter`.
/// Optimizers update ``value`` from ``grad``; backward passes accumulate into
/// ``grad`` (PyTorch semantics: call ``SGD/zeroGrad()`` between steps).
public final class Parameter {
    /// The parameter's current value.
    public let value: Tensor
    private let _grad: Tensor
    /// Set by ``zeroGrad()``: the stored gradient is logically zero.
    private var _gradIsZero = true

    init(_ value: Tensor) {
        self.value = value
        _grad = Tensor(_validShape: value.shape)
    }

    /// Accumulated gradient, same shape as ``value``.
    public var grad: Tensor {
        if _gradIsZero { _grad.fill(0); _gradIsZero = false }
        return _grad
    }

    /// Sets the gradient to zero. Like PyTorch's `zero_grad(set_to_none=True)`
    /// it writes nothing now: the next backward *writes* its gradient instead
    /// of adding to zeros (one pass over the weights fewer per step), and
    /// reading ``grad`` before that shows zeros.
    public func zeroGrad() { _gradIsZero = true }

    /// For a backward pass: the gradient buffer, and whether to add to it
    /// (false: overwrite every element, e.g. sgemm with β = 0).
    func _gradForUpdate() -> (buffer: Tensor, accumulate: Bool) {
        let accumulate = !_gradIsZero
        _gradIsZero = false
        return (_grad, accumulate)
    }

    /// For kernels that only add (`+=`) into a gradient: the buffer, cleared
    /// first when ``zeroGrad()`` left it logically zero.
    func _gradForAccumulation() -> UnsafeMutablePointer<Float> {
        let g = _gradForUpdate()
        if !g.accumulate { g.buffer.fill(0) }
        return g.buffer._pointer
    }
}

/// One named entry of a model's state, as in PyTorch's `state_dict()`.
public enum StateEntry {
    /// A learnable parameter (saved, and updated by optimizers). Float32.
    case parameter(Parameter)
    /// A Float32 buffer: saved with the model, never touched by an optimizer
    /// (`running_mean`, `running_var`).
    case buffer(Tensor)
    /// An Int64 scalar buffer: a normalization layer's `num_batches_tracked`.
    case batchCounter(BatchCounting)
}

/// A layer with PyTorch's `num_batches_tracked` buffer (BatchNorm, InstanceNorm).
public protocol BatchCounting: AnyObject {
    /// Training batches counted so far; saved as an Int64 scalar.
    var numBatchesTracked: Int64 { get set }
}

/// A network layer with an explicit forward/backward pair.
///
/// `forward` keeps what `backward` needs (its input or output); `backward`
/// takes ∂loss/∂output, accumulates parameter gradients and returns
/// ∂loss/∂input — or `nil` when `needsInputGradient` is false, which lets the
/// first layer of a network skip a whole matrix product.
///
/// Layers are not thread-safe: a forward or backward writes the layer's kept
/// buffers, so one layer (or one network) used from two threads at once is a
/// data race. Give each thread its own model (data-parallel ranks do).
public protocol Layer: AnyObject {
    /// Training (batch statistics, updates buffers) or evaluation mode.
    var isTraining: Bool { get }
    /// Sets the mode of this layer and every layer inside it.
    func setTraining(_ training: Bool)
    /// Computes the output for `input`. The returned tensor belongs to the
    /// layer and is overwritten by its next `forward`.
    func forward(_ input: Tensor) throws -> Tensor
    /// Back-propagates `gradOutput` (shape of the last output).
    func backward(_ gradOutput: Tensor, needsInputGradient: Bool) throws -> Tensor?
    /// Parameters and buffers with PyTorch `state_dict` names under `prefix`.
    func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)]
}

extension Layer {
    /// Training mode for this layer and all inside it (PyTorch's `train()`).
    public func train() { setTraining(true) }
    /// Evaluation mode for this layer and all inside it (PyTorch's `eval()`).
    public func eval() { setTraining(false) }

    /// Back-propagates and returns ∂loss/∂input.
    public func backward(_ gradOutput: Tensor) throws -> Tensor {
        try backward(gradOutput, needsInputGradient: true)!
    }

    /// Learnable parameters with their `state_dict` names, in order.
    public func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        namedStateEntries(prefix: prefix).compactMap {
            if case let .parameter(p) = $0.entry { return ($0.name, p) } else { return nil }
        }
    }

    /// Learnable parameters, in `state_dict` order.
    public func parameters() -> [Parameter] { namedParameters().map(\.parameter) }

    /// Default: a layer without parameters or buffers.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] { [] }
}

/// Checks that `input` is `(N, features)` with N ≥ 1. `context` is an
/// autoclosure so the happy path builds no string (no allocation per step).
@inline(__always)
func _checkMatrix(_ input: Tensor, features: Int, context: @autoclosure () -> String) throws {
    guard input.shape.count == 2 else {
        throw BatchNormKitError.shapeMismatch(context: context(), expected: "(N, \(features))", got: input.shape)
    }
    guard input.shape[1] == features else {
        throw BatchNormKitError.featureCountMismatch(context: context(), expected: features, got: input.shape[1])
    }
    guard input.shape[0] > 0 else { throw BatchNormKitError.emptyBatch(context: context()) }
}

/// Checks that a gradient has the shape of the output it belongs to.
@inline(__always)
func _checkGradient(_ grad: Tensor, like output: Tensor?, context: @autoclosure () -> String) throws -> Tensor {
    guard let output else {
        throw BatchNormKitError.invalidArgument(name: "backward", value: "before forward", requirement: "\(context()): call forward first")
    }
    guard grad.shape == output.shape else {
        throw BatchNormKitError.shapeMismatch(context: "\(context()) backward", expected: "\(output.shape)", got: grad.shape)
    }
    return output
}
