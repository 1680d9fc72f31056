/// What a training loop needs of an optimizer (``SGD``, ``Adam``, ``AdamW``),
/// PyTorch's `torch.optim.Optimizer` for one parameter group.
///
/// ``step()`` updates every parameter in place from its accumulated
/// gradient; optimizers allocate their state buffers on the first step and
/// reuse them after it, so a training step allocates nothing.
public protocol Optimizer: AnyObject {
    /// The parameters ``step()`` updates, in order.
    var parameters: [Parameter] { get }
    /// PyTorch's `lr`; a learning-rate schedule sets it between steps.
    var learningRate: Float { get set }
    /// Sets every parameter's gradient to zero (PyTorch's `zero_grad`).
    func zeroGrad()
    /// One update of every parameter from its accumulated gradient.
    func step()
    /// Sets the momentum a schedule cycles (``LearningRateScheduler/momentum(at:)``,
    /// PyTorch's OneCycleLR): SGD's momentum, Adam's β₁.
    func setMomentum(_ momentum: Double)

    /// The optimizer's per-parameter state, PyTorch's `optimizer.state`:
    /// one tensor per kind (e.g. `exp_avg`) and parameter, each the
    /// parameter's shape, plus scalar counters. Empty before the first step.
    ///
    /// - Parameter parameterNames: the state-dict name of each parameter, in
    ///   ``parameters`` order; the entries are named `<kind>.<parameter name>`.
    func stateTensors(parameterNames: [String]) -> [String: SafeTensor]

    /// Restores what ``stateTensors(parameterNames:)`` returned, all or nothing.
    ///
    /// - Throws: `BatchNormKitError.checkpointMismatch` naming every entry
    ///   that is missing or has the wrong shape.
    func loadStateTensors(_ tensors: [String: SafeTensor], parameterNames: [String], path: String) throws
}

extension Optimizer {
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}

/// Checks a learning rate as every optimizer does: finite and ≥ 0.
func _checkLearningRate(_ learningRate: Float) throws { try _checkFiniteNonNegative(learningRate, "learning rate") }

/// Throws `invalidArgument` naming `name` unless `value` is finite and ≥ 0.
func _checkFiniteNonNegative<Value: BinaryFloatingPoint>(_ value: Value, _ name: String) throws {
    guard value >= 0, value.isFinite else {
        throw BatchNormKitError.invalidArgument(name: name, value: "\(value)", requirement: "must be finite and ≥ 0")
    }
}

// MARK: - State buffers

/// One zero-initialized Float32 buffer per parameter, its value's size,
/// allocated once and freed with the optimizer.
final class _ParameterBuffers {
    let pointers: [UnsafeMutablePointer<Float>]
    let counts: [Int]

    init(like parameters: [Parameter]) {
        counts = parameters.map(\.value.count)
        pointers = counts.map {
            let b = UnsafeMutablePointer<Float>.allocate(capacity: max($0, 1))
            b.initialize(repeating: 0, count: max($0, 1))
            return b
        }
    }

    deinit { for p in pointers { p.deallocate() } }

    /// `<kind>.<name>` → a copy of each buffer with its parameter's shape.
    func tensors(kind: String, parameters: [Parameter], names: [String]) -> [String: SafeTensor] {
        var result: [String: SafeTensor] = [:]
        for (index, p) in parameters.enumerated() {
            let values = Array(UnsafeBufferPointer(start: pointers[index], count: counts[index]))
            // The values are the parameter's count by construction.
            result["\(kind).\(names[index])"] = try? SafeTensor(floats: values, shape: p.value.shape)
        }
        return result
    }
}

/// Reads `<kind>.<name>` F32 tensors of each parameter's shape out of
/// `tensors`, or lists what is missing or mis-shaped (nothing is written).
func _readStateBuffers(kinds: [String], from tensors: [String: SafeTensor], parameters: [Parameter],
                       names: [String], path: String) throws -> [String: [[Float]]] {
    var result: [String: [[Float]]] = [:], missing: [String] = [], mismatched: [String] = []
    for kind in kinds {
        var values: [[Float]] = []
        for (index, p) in parameters.enumerated() {
            let key = "\(kind).\(names[index])"
            guard let stored = tensors[key] else { missing.append(key); continue }
            guard stored.dtype == .f32, stored.shape == p.value.shape else {
                mismatched.append("\(key): expected \(_describe(.f32, p.value.shape)), got \(_describe(stored.dtype, stored.shape))")
                continue
            }
            values.append(try stored.floats)
        }
        result[kind] = values
    }
    guard missing.isEmpty, mismatched.isEmpty else {
        throw BatchNormKitError.checkpointMismatch(path: path, missing: missing, unexpected: [], mismatched: mismatched)
    }
    return result
}

/// Reads an I64 scalar `name`, or throws naming it.
func _readStateCounter(_ name: String, from tensors: [String: SafeTensor], path: String) throws -> Int64 {
    guard let stored = tensors[name] else {
        throw BatchNormKitError.checkpointMismatch(path: path, missing: [name], unexpected: [], mismatched: [])
    }
    guard stored.dtype == .i64, stored.shape == [], let value = try stored.int64s.first else {
        throw BatchNormKitError.checkpointMismatch(
            path: path, missing: [], unexpected: [],
            mismatched: ["\(name): expected \(_describe(.i64, [])), got \(_describe(stored.dtype, stored.shape))"])
    }
    return value
}
