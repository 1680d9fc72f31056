/// Layers applied in order, `torch.nn.Sequential`.
///
/// `forward` runs each layer on the previous one's output; `backward` runs
/// them in reverse. `train()`/`eval()` reach every layer. State names are
/// PyTorch's: the i-th layer's entries are prefixed `"i."`.
public final class Sequential: Layer {
    /// The layers, in order.
    public let layers: [Layer]
    /// Whether ``backward(_:needsInputGradient:)`` of the first layer must
    /// produce ∂loss/∂input. False by default: a network's input (the data)
    /// needs no gradient, so the first Linear skips its dX product.
    public var inputRequiresGradient = false

    /// A stack of `layers`, applied first to last.
    public init(_ layers: [Layer]) { self.layers = layers }
    /// A stack of `layers`, applied first to last.
    public convenience init(_ layers: Layer...) { self.init(layers) }

    public var isTraining: Bool { layers.first?.isTraining ?? true }
    public func setTraining(_ training: Bool) { for l in layers { l.setTraining(training) } }

    /// The last layer's output for `input` (the first layer's input shape).
    public func forward(_ input: Tensor) throws -> Tensor {
        var x = input
        for l in layers { x = try l.forward(x) }
        return x
    }

    /// Back-propagates through the layers in reverse; nil when the first layer skips ∂loss/∂input.
    public func backward(_ gradOutput: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        var g = gradOutput
        for i in layers.indices.reversed() {
            // inner layers always pass a gradient on; the first only when asked
            guard let next = try layers[i].backward(g, needsInputGradient: i > 0 || needsInputGradient) else { return nil }
            g = next
        }
        return g
    }

    /// Back-propagates through all layers, skipping ∂loss/∂input unless
    /// ``inputRequiresGradient``; accumulates every parameter's gradient.
    public func backward(_ gradOutput: Tensor) throws {
        _ = try backward(gradOutput, needsInputGradient: inputRequiresGradient)
    }

    /// Entries of layer i as `<prefix>i.<name>`.
    public func namedStateEntries(prefix: String) -> [(name: String, entry: StateEntry)] {
        layers.indices.flatMap { layers[$0].namedStateEntries(prefix: "\(prefix)\($0).") }
    }
}
