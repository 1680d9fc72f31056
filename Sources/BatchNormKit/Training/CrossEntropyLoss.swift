#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Mean cross-entropy of logits against class indices, fused with
/// log-softmax, `torch.nn.CrossEntropyLoss()`:
///
///     loss = −(1/N) Σₙ log softmax(xₙ)[yₙ],   ∂loss/∂x = (softmax(x) − onehot(y)) / N
///
/// - logits `(N, K)`, labels `[N]` in `0..<K`.
/// Computing both from one log-sum-exp per row is stable for any logits.
public final class CrossEntropyLoss {
    private var gradient: Tensor?
    private var correctCount = 0

    public init() {}

    /// The mean loss; keeps ∂loss/∂logits for ``backward()``.
    public func forward(logits: Tensor, labels: [Int32]) throws -> Float {
        guard logits.shape.count == 2, logits.shape[1] > 0 else {
            throw BatchNormKitError.shapeMismatch(context: "CrossEntropyLoss logits", expected: "(N, K)", got: logits.shape)
        }
        let n = logits.shape[0], k = logits.shape[1]
        guard n > 0 else { throw BatchNormKitError.emptyBatch(context: "CrossEntropyLoss") }
        guard labels.count == n else {
            throw BatchNormKitError.elementCountMismatch(context: "CrossEntropyLoss labels for \(n) logits rows", expected: n, got: labels.count)
        }
        let grad = gradient._reuse(sameShapeAs: logits)
        var total = 0.0
        var correct = 0
        let invN = 1 / Float(n)
        for row in 0..<n {
            let label = Int(labels[row])
            guard label >= 0 && label < k else {
                throw BatchNormKitError.invalidArgument(name: "label", value: "\(label) at index \(row)", requirement: "must be in 0..<\(k)")
            }
            let x = logits._pointer + row * k, g = grad._pointer + row * k
            var top = -Float.infinity, arg = 0
            for j in 0..<k where x[j] > top { top = x[j]; arg = j }
            if arg == label { correct += 1 }
            var z: Float = 0
            for j in 0..<k { let e = expf(x[j] - top); g[j] = e; z += e }
            total += Double(top + logf(z) - x[label])   // −log p[label]
            let scale = invN / z
            for j in 0..<k { g[j] *= scale }
            g[label] -= invN
        }
        correctCount = correct
        return Float(total / Double(n))
    }

    /// ∂loss/∂logits `(N, K)` of the last ``forward(logits:labels:)``.
    public func backward() throws -> Tensor {
        guard let gradient else {
            throw BatchNormKitError.invalidArgument(name: "backward", value: "before forward", requirement: "CrossEntropyLoss: call forward first")
        }
        return gradient
    }

    /// How many rows of the last forward had their label as the top logit.
    public var lastCorrectCount: Int { correctCount }
}
