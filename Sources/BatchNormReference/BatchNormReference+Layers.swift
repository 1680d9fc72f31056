// MARK: - Naive twins of the library's other layers
//
// Linear's sgemm calls, ReLU, softmax and the fused cross-entropy, written as
// plain Double loops. Shapes: batch-major row-major arrays.

extension BatchNormReference {
    /// Y = X·Wᵀ + b. x: `(N, in)`, weight: `(out, in)`, bias: `[out]` or nil → `(N, out)`.
    public static func linearForward<T: BinaryFloatingPoint>(
        _ x: [T], n: Int, inFeatures: Int, weight: [T], bias: [T]?, outFeatures: Int
    ) -> [Double] {
        var y = [Double](repeating: 0, count: n * outFeatures)
        for s in 0..<n {
            for o in 0..<outFeatures {
                var acc = bias.map { Double($0[o]) } ?? 0
                for i in 0..<inFeatures { acc += Double(x[s * inFeatures + i]) * Double(weight[o * inFeatures + i]) }
                y[s * outFeatures + o] = acc
            }
        }
        return y
    }

    /// dW = dYᵀ·X `(out, in)`, db = Σ_rows dY `[out]`, dX = dY·W `(N, in)`.
    public static func linearBackward<T: BinaryFloatingPoint>(
        gradOutput: [T], x: [T], n: Int, inFeatures: Int, weight: [T], outFeatures: Int
    ) -> (input: [Double], weight: [Double], bias: [Double]) {
        var dx = [Double](repeating: 0, count: n * inFeatures)
        var dw = [Double](repeating: 0, count: outFeatures * inFeatures)
        var db = [Double](repeating: 0, count: outFeatures)
        for s in 0..<n {
            for o in 0..<outFeatures {
                let g = Double(gradOutput[s * outFeatures + o])
                db[o] += g
                for i in 0..<inFeatures {
                    dw[o * inFeatures + i] += g * Double(x[s * inFeatures + i])
                    dx[s * inFeatures + i] += g * Double(weight[o * inFeatures + i])
                }
            }
        }
        return (dx, dw, db)
    }

    /// max(0, x) elementwise.
    public static func relu<T: BinaryFloatingPoint>(_ x: [T]) -> [Double] { x.map { max(0, Double($0)) } }

    /// Row-wise softmax of `(N, K)` logits, exp(x − max) / Σ exp(x − max).
    public static func softmax<T: BinaryFloatingPoint>(_ logits: [T], n: Int, classes: Int) -> [Double] {
        var out = [Double](repeating: 0, count: logits.count)
        for s in 0..<n {
            let row = (0..<classes).map { Double(logits[s * classes + $0]) }
            let top = row.max() ?? 0
            let e = row.map { ($0 - top).exp() }
            let z = e.reduce(0, +)
            for k in 0..<classes { out[s * classes + k] = e[k] / z }
        }
        return out
    }

    /// Row-wise log-softmax: x − max − log Σ exp(x − max).
    public static func logSoftmax<T: BinaryFloatingPoint>(_ logits: [T], n: Int, classes: Int) -> [Double] {
        var out = [Double](repeating: 0, count: logits.count)
        for s in 0..<n {
            let row = (0..<classes).map { Double(logits[s * classes + $0]) }
            let top = row.max() ?? 0
            let logZ = top + row.map { ($0 - top).exp() }.reduce(0, +).log()
            for k in 0..<classes { out[s * classes + k] = row[k] - logZ }
        }
        return out
    }

    /// Mean cross-entropy of `(N, K)` logits against class labels, and its
    /// gradient (softmax − onehot)/N.
    public static func crossEntropy<T: BinaryFloatingPoint>(
        logits: [T], labels: [Int], n: Int, classes: Int
    ) -> (loss: Double, gradient: [Double]) {
        let logp = logSoftmax(logits, n: n, classes: classes)
        var loss = 0.0
        var grad = [Double](repeating: 0, count: logits.count)
        for s in 0..<n {
            loss -= logp[s * classes + labels[s]]
            for k in 0..<classes {
                grad[s * classes + k] = (logp[s * classes + k].exp() - (k == labels[s] ? 1 : 0)) / Double(n)
            }
        }
        return (loss / Double(n), grad)
    }
}

extension Double {
    fileprivate func exp() -> Double { _exp(self) }
    fileprivate func log() -> Double { _log(self) }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _exp(_ x: Double) -> Double { Glibc.exp(x) }
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
#else
import Darwin
@inline(__always) private func _exp(_ x: Double) -> Double { Darwin.exp(x) }
@inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
#endif
