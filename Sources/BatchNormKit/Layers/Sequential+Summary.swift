// A model summary in the manner of `torchinfo.summary`: one row per layer
// with its output shape and how many values it holds.

/// One row of a ``ModelSummary``.
public struct LayerSummary: Sendable, Equatable {
    /// The layer's index in its ``Sequential`` (its state-name prefix).
    public let index: Int
    /// The layer's Swift type, e.g. `BatchNorm1d`.
    public let type: String
    /// The shape ``Layer/forward(_:)`` returns for the summary's input.
    public let outputShape: [Int]
    /// Learnable values (weights, biases, γ, β).
    public let parameterCount: Int
    /// Saved values that are not learned: running statistics and each
    /// `num_batches_tracked` counter (one value).
    public let bufferCount: Int
}

/// What ``Sequential/summary(inputShape:)`` returns; its `description` is the table.
public struct ModelSummary: Sendable, Equatable, CustomStringConvertible {
    /// The input shape the output shapes were computed for.
    public let inputShape: [Int]
    /// One row per layer, in order.
    public let layers: [LayerSummary]
    /// Learnable values in all layers.
    public var totalParameters: Int { layers.reduce(0) { $0 + $1.parameterCount } }
    /// Buffer values in all layers.
    public var totalBuffers: Int { layers.reduce(0) { $0 + $1.bufferCount } }

    /// The table: `#  layer  output shape  parameters  buffers`, then the totals.
    public var description: String {
        let header = ["#", "layer", "output shape", "parameters", "buffers"]
        let rows = layers.map { ["\($0.index)", $0.type, "\($0.outputShape)", _grouped($0.parameterCount), _grouped($0.bufferCount)] }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column >= 3 ? pad + cell : cell + pad      // counts right-aligned
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "─", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        return ([line(header), rule] + rows.map(line) + [rule,
            "input \(inputShape)",
            "total parameters \(_grouped(totalParameters)) (\(_bytes(totalParameters)) as Float32)",
            "total buffers    \(_grouped(totalBuffers))"]).joined(separator: "\n")
    }
}

extension Sequential {
    /// Each layer's output shape and parameter and buffer counts, like
    /// `torchinfo.summary(model, input_size=inputShape)`.
    ///
    /// The shapes come from one forward pass of zeros in evaluation mode
    /// (running statistics are read, never updated); the mode is restored
    /// afterwards. That pass overwrites the layers' output buffers, so call
    /// it between training steps, not between a forward and its backward.
    ///
    /// - Parameter inputShape: the input with its batch dimension, e.g. `[1, 784]`.
    /// - Throws: the layers' shape errors when `inputShape` does not fit the first layer.
    public func summary(inputShape: [Int]) throws -> ModelSummary {
        let wasTraining = isTraining
        eval()
        defer { setTraining(wasTraining) }
        var x = try Tensor(shape: inputShape, scalars: [Float](repeating: 0, count: inputShape.reduce(1, *)))
        var rows: [LayerSummary] = []
        for (index, layer) in layers.enumerated() {
            x = try layer.forward(x)
            var parameters = 0, buffers = 0
            for (_, entry) in layer.namedStateEntries(prefix: "") {
                switch entry {
                case let .parameter(p): parameters += p.value.count
                case let .buffer(t): buffers += t.count
                case .batchCounter: buffers += 1
                }
            }
            rows.append(LayerSummary(index: index, type: String(describing: Swift.type(of: layer)), outputShape: x.shape,
                                     parameterCount: parameters, bufferCount: buffers))
        }
        return ModelSummary(inputShape: inputShape, layers: rows)
    }
}

extension SeedNetwork {
    /// ``Sequential/summary(inputShape:)`` of ``layers`` for `batch` samples.
    public func summary(batch: Int = 1) throws -> ModelSummary {
        try layers.summary(inputShape: [batch, architecture.inputSize])
    }
}

/// `218,058`: thousands separated by commas, as torchinfo prints them.
func _grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (value < 0 ? "-" : "") + out
}

/// `872.2 kB`: the Float32 size of `count` values.
func _bytes(_ count: Int) -> String {
    let bytes = Double(count) * 4
    return bytes >= 1e6 ? "\((bytes / 1e5).rounded() / 10) MB" : "\((bytes / 1e2).rounded() / 10) kB"
}
