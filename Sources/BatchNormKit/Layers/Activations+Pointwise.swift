/// The shared forward/backward pair of the elementwise activations that
/// need more than a sign test (``Sigmoid``, ``Tanh``, ``SELU``, ``GELU``,
/// ``LeakyReLU``): y = f(x) elementwise; dx = dy ⊙ f′(x).
///
/// Forward keeps its input and output (backward reads whichever the
/// derivative is cheaper in); both output buffers belong to the layer and are
/// reused, so a step allocates nothing. Any shape in, same shape out.
///
/// Not subclassable outside the module: use the concrete layers.
public class _PointwiseActivation: Layer {
    public private(set) var isTraining = true
    var input: Tensor?
    var output: Tensor?
    var gradInput: Tensor?

    init() {}
    public func setTraining(_ training: Bool) { isTraining = training }

    /// y `(*)` = f(x) `(*)`.
    public func forward(_ x: Tensor) throws -> Tensor {
        let y = output._reuse(sameShapeAs: x)
        input = x
        apply(x._pointer, into: y._pointer, count: x.count)
        return y
    }

    /// dx `(*)` = dy ⊙ f′(x), dy of the last output's shape.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        let y = try _checkGradient(dy, like: output, context: name)
        guard needsInputGradient, let x = input else { return nil }
        let dx = gradInput._reuse(sameShapeAs: dy)
        derivative(input: x._pointer, output: y._pointer, gradOutput: dy._pointer, into: dx._pointer, count: dy.count)
        return dx
    }

    /// The layer's name in messages; subclasses override.
    var name: String { "\(type(of: self))" }
    /// y[i] = f(x[i]); subclasses override.
    func apply(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) { fatalError("subclass responsibility") }
    /// dx[i] = dy[i]·f′(x[i]) (from x or y = f(x)); subclasses override.
    func derivative(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, gradOutput dy: UnsafePointer<Float>,
                    into dx: UnsafeMutablePointer<Float>, count: Int) { fatalError("subclass responsibility") }
}
