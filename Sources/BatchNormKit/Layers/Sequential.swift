/// Layers applied in order, `torch.nn.Sequential`.
///
/// `forward` runs each layer on the previous one's output; `backward` runs
/// them in reverse. `train()`/`eval()` reach every layer. State names are
/// PyTorch's: the i-th layer's entries are prefixed `"i."`.
///
/// A BatchNorm (``BatchNorm1d``, ``BatchNorm2d``, ``SyncBatchNorm``), ``GroupNorm``
/// or ``LayerNorm`` directly followed by a ``ReLU`` runs as one fused layer:
/// `forwardReLU(_:)` and `backwardReLU(_:needsInputGradient:)` clamp and mask
/// inside the normalization's passes, saving a read and a write of the batch
/// in each direction (InstanceNorm runs unfused). Outputs, gradients, running statistics and state names are the
/// pair's (the ReLU stays in ``layers`` at its index); ``fusesBatchNormReLU``
/// turns it off.
public final class Sequential: Layer {
    /// The layers, in order.
    public let layers: [Layer]
    /// Whether each BatchNorm, GroupNorm or LayerNorm directly followed by a
    /// ReLU runs fused with it (default true; false runs every layer alone,
    /// the same numbers). The name predates the GroupNorm and LayerNorm fusion.
    public var fusesBatchNormReLU = true
    /// `fusableNorms[i]`: layer i when it is a fusable norm and layer i + 1 a ReLU.
    private let fusableNorms: [_ReLUFusable?]
    /// Whether ``backward(_:needsInputGradient:)`` of the first layer must
    /// produce ∂loss/∂input. False by default: a network's input (the data)
    /// needs no gradient, so the first Linear skips its dX product.
    public var inputRequiresGradient = false

    /// A stack of `layers`, applied first to last.
    public init(_ layers: [Layer]) {
        self.layers = layers
        fusableNorms = layers.indices.map { i in
            i + 1 < layers.count && layers[i + 1] is ReLU ? layers[i] as? _ReLUFusable : nil
        }
    }
    /// A stack of `layers`, applied first to last.
    public convenience init(_ layers: Layer...) { self.init(layers) }

    public var isTraining: Bool { layers.first?.isTraining ?? true }
    public func setTraining(_ training: Bool) { for l in layers { l.setTraining(training) } }

    /// The last layer's output for `input` (the first layer's input shape).
    public func forward(_ input: Tensor) throws -> Tensor {
        var x = input, i = 0
        while i < layers.count {
            if fusesBatchNormReLU, let norm = fusableNorms[i] {
                x = try norm.forwardReLU(x)   // layers i and i + 1
                i += 2
            } else {
                x = try layers[i].forward(x)
                i += 1
            }
        }
        return x
    }

    /// Back-propagates through the layers in reverse; nil when the first layer skips ∂loss/∂input.
    public func backward(_ gradOutput: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        var g = gradOutput, i = layers.count - 1
        while i >= 0 {
            // inner layers always pass a gradient on; the first only when asked
            let next: Tensor?
            if i > 0, let norm = fusableNorms[i - 1], norm.lastForwardFusedReLU {
                // layers i − 1 and i ran fused (the norm knows how its last forward ran): back through both
                i -= 1
                next = try norm.backwardReLU(g, needsInputGradient: i > 0 || needsInputGradient)
            } else {
                next = try layers[i].backward(g, needsInputGradient: i > 0 || needsInputGradient)
            }
            guard let next else { return nil }
            g = next
            i -= 1
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

/// A normalization layer that can run together with the ReLU after it (see ``Sequential``).
protocol _ReLUFusable: Layer {
    /// Whether the last forward was ``forwardReLU(_:)``.
    var lastForwardFusedReLU: Bool { get }
    func forwardReLU(_ x: Tensor) throws -> Tensor
    func backwardReLU(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor?
}

extension _BatchNorm: _ReLUFusable {}
// on the final classes, not `_GroupNormalization`: InstanceNorm's forward is its own
extension GroupNorm: _ReLUFusable {}
extension LayerNorm: _ReLUFusable {}
