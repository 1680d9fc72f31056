/// Every error BatchNormKit throws. Messages say what was expected and what
/// was found, in words a user can act on.
public enum BatchNormKitError: Error, Equatable, CustomStringConvertible {
    /// A tensor had the wrong shape. `context` names the operation.
    case shapeMismatch(context: String, expected: String, got: [Int])
    /// Input feature count differs from the layer's.
    case featureCountMismatch(context: String, expected: Int, got: Int)
    /// A batch with no samples.
    case emptyBatch(context: String)
    /// Training-mode BatchNorm with one value per feature (N·L == 1): the
    /// batch variance is 0 and the unbiased running variance undefined.
    case notEnoughValuesPerFeature(context: String, shape: [Int])
    /// An argument outside its domain (eps ≤ 0, momentum ∉ [0, 1], …).
    case invalidArgument(name: String, value: String, requirement: String)
    /// A data length that does not match a shape.
    case elementCountMismatch(context: String, expected: Int, got: Int)
    /// A file that could not be read or written.
    case fileUnreadable(path: String, reason: String)
    /// A file whose contents are malformed (bad magic, truncated, …).
    case fileFormat(path: String, reason: String)
    /// A checkpoint that does not match the model it is loaded into.
    case checkpointMismatch(path: String, missing: [String], unexpected: [String], mismatched: [String])
    /// Training produced a non-finite loss (or non-finite weights) at
    /// 1-based `epoch` and `step`: the run diverged and was stopped.
    case diverged(epoch: Int, step: Int, loss: Double)
    /// A data-parallel rank failed (nil: a rank that did not arrive in time),
    /// ending the whole job.
    case rankFailed(rank: Int?, reason: String)
    /// The ranks of a data-parallel job started with different settings,
    /// data or models; each difference names the setting and the ranks.
    case configurationMismatch(differences: [String])

    public var description: String {
        switch self {
        case let .shapeMismatch(context, expected, got):
            return "\(context): expected shape \(expected), got \(got)"
        case let .featureCountMismatch(context, expected, got):
            return "\(context): expected \(expected) features, got \(got)"
        case let .emptyBatch(context):
            return "\(context): the batch is empty (0 samples)"
        case let .notEnoughValuesPerFeature(context, shape):
            return "\(context): expected more than 1 value per feature when training, got input of shape \(shape)"
        case let .invalidArgument(name, value, requirement):
            return "invalid \(name) \(value): \(requirement)"
        case let .elementCountMismatch(context, expected, got):
            return "\(context): expected \(expected) elements, got \(got)"
        case let .fileUnreadable(path, reason):
            return "\(path): \(reason)"
        case let .fileFormat(path, reason):
            return "\(path): \(reason)"
        case let .checkpointMismatch(path, missing, unexpected, mismatched):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(missing.joined(separator: ", "))") }
            if !unexpected.isEmpty { parts.append("unexpected \(unexpected.joined(separator: ", "))") }
            if !mismatched.isEmpty { parts.append("mismatched \(mismatched.joined(separator: "; "))") }
            return "\(path): checkpoint does not fit the model: " + parts.joined(separator: "; ")
        case let .diverged(epoch, step, loss):
            return "training diverged at epoch \(epoch), step \(step): the loss is \(loss), not finite (a smaller learning rate, or BatchNorm, may train)"
        case let .rankFailed(rank, reason):
            return (rank.map { "rank \($0) failed" } ?? "a rank did not arrive") + ": \(reason)"
        case let .configurationMismatch(differences):
            return "the ranks disagree on their configuration, refusing to start: " + differences.joined(separator: "; ")
        }
    }
}
