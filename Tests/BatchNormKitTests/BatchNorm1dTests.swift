import Foundation
import Testing
import BatchNormReference
@testable import BatchNormKit

// Tolerances: the layer computes in Float32 with Double per-feature
// constants; the reference is Double. Outputs are O(1): atol 2e-5 covers a
// few Float32 roundings (ε = 6e-8) of values up to ~10 standard deviations.
// Gradient sums over N values: atol 1e-4.

@Suite("BatchNorm1d against the Double reference")
struct BatchNorm1dTests {
    static let shapes: [[Int]] = [[2, 3], [7, 5], [64, 17], [256, 64], [4, 3, 5], [3, 17, 9], [2, 1]]

    func params(_ bn: BatchNorm1d, _ rng: inout ReferenceRandom) -> (gamma: [Double], beta: [Double]) {
        let c = bn.numFeatures
        let g = (0..<c).map { _ in Float(0.5 + rng.unit()) }, b = (0..<c).map { _ in Float(rng.normal()) }
        bn.weight!.value.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = g[i] } }
        bn.bias!.value.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = b[i] } }
        return (g.map(Double.init), b.map(Double.init))
    }

    @Test("train forward and backward", arguments: shapes)
    func trainMode(shape: [Int]) throws {
        let n = shape[0], c = shape[1], l = shape.count == 3 ? shape[2] : 1
        var rng = ReferenceRandom(seed: UInt64(n * 31 + c))
        let bn = try BatchNorm1d(numFeatures: c)
        let (gamma, beta) = params(bn, &rng)
        let x = rng.batch(n: n, c: c, l: l), dy = rng.normals(x.count)
        let y = try bn.forward(.of(shape, x))
        let want = BatchNormReference.forwardTrain(x, n: n, c: c, l: l, gamma: gamma, beta: beta, eps: 1e-5)
        let fy = expectClose(y.scalars, want, rtol: 1e-5, atol: 2e-5, "y")
        #expect(fy.ok, "\(fy.message)")
        let dx = try bn.backward(.of(shape, dy))
        let g = BatchNormReference.backwardTrain(gradOutput: dy, input: x, n: n, c: c, l: l, gamma: gamma, eps: 1e-5)
        for (got, wanted, name) in [(dx.scalars, g.input, "dx"), (bn.weight!.grad.scalars, g.gamma, "dγ"), (bn.bias!.grad.scalars, g.beta, "dβ")] {
            let r = expectClose(got, wanted, rtol: 1e-4, atol: 1e-4, name)
            #expect(r.ok, "\(r.message)")
        }
    }

    @Test("eval forward and backward use the running buffers", arguments: shapes)
    func evalMode(shape: [Int]) throws {
        let n = shape[0], c = shape[1], l = shape.count == 3 ? shape[2] : 1
        var rng = ReferenceRandom(seed: UInt64(n + c * 7))
        let bn = try BatchNorm1d(numFeatures: c)
        let (gamma, beta) = params(bn, &rng)
        let rm = rng.normals(c), rv = (0..<c).map { _ in Float(0.2 + rng.unit()) }
        bn.runningMean!.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = rm[i] } }
        bn.runningVar!.withUnsafeMutableBufferPointer { for i in 0..<c { $0[i] = rv[i] } }
        bn.eval()
        let x = rng.batch(n: n, c: c, l: l), dy = rng.normals(x.count)
        let y = try bn.forward(.of(shape, x))
        let want = BatchNormReference.forwardEval(x, n: n, c: c, l: l, runningMean: rm.map(Double.init),
                                                  runningVar: rv.map(Double.init), gamma: gamma, beta: beta, eps: 1e-5)
        #expect(expectClose(y.scalars, want, rtol: 1e-5, atol: 2e-5, "y").ok)
        let dx = try bn.backward(.of(shape, dy))
        let g = BatchNormReference.backwardEval(gradOutput: dy, input: x, n: n, c: c, l: l, runningMean: rm.map(Double.init),
                                                runningVar: rv.map(Double.init), gamma: gamma, eps: 1e-5)
        #expect(expectClose(dx.scalars, g.input, rtol: 1e-5, atol: 1e-5, "dx").ok)
        #expect(expectClose(bn.weight!.grad.scalars, g.gamma, rtol: 1e-4, atol: 1e-4, "dγ").ok)
        #expect(expectClose(bn.bias!.grad.scalars, g.beta, rtol: 1e-4, atol: 1e-4, "dβ").ok)
        #expect(bn.numBatchesTracked == 0, "eval mode must not touch the running statistics")
        #expect(bn.runningMean!.scalars == rm)
    }

    @Test("running statistics after several steps match the closed form", arguments: [Float(0.1), Float(0.3), nil])
    func runningStatisticsClosedForm(momentum: Float?) throws {
        let n = 6, c = 4, steps = 5
        let bn = try BatchNorm1d(numFeatures: c, momentum: momentum)
        var rng = ReferenceRandom(seed: 99)
        var batchMeans: [[Double]] = [], batchVars: [[Double]] = []
        for _ in 0..<steps {
            let x = rng.batch(n: n, c: c)
            _ = try bn.forward(.of([n, c], x))
            let m = BatchNormReference.moments(x, n: n, c: c)
            batchMeans.append(m.mean); batchVars.append(m.unbiasedVariance)
        }
        // momentum m: running_k = (1−m)^k·init + Σᵢ m(1−m)^(k−i)·batchᵢ (init mean 0, var 1);
        // momentum nil: the plain average of the k batch values.
        var wantMean = [Double](repeating: 0, count: c), wantVar = [Double](repeating: 0, count: c)
        for f in 0..<c {
            if let m = momentum.map(Double.init) {
                wantVar[f] = pow(1 - m, Double(steps))
                for i in 0..<steps {
                    let w = m * pow(1 - m, Double(steps - 1 - i))
                    wantMean[f] += w * batchMeans[i][f]; wantVar[f] += w * batchVars[i][f]
                }
            } else {
                wantMean[f] = batchMeans.map { $0[f] }.reduce(0, +) / Double(steps)
                wantVar[f] = batchVars.map { $0[f] }.reduce(0, +) / Double(steps)
            }
        }
        #expect(bn.numBatchesTracked == Int64(steps))
        #expect(expectClose(bn.runningMean!.scalars, wantMean, rtol: 1e-5, atol: 1e-6, "running_mean").ok)
        #expect(expectClose(bn.runningVar!.scalars, wantVar, rtol: 1e-5, atol: 1e-6, "running_var").ok)
    }

    @Test("eval: a sample's output does not depend on its batch; train: it does")
    func batchDependence() throws {
        let c = 5
        let bn = try BatchNorm1d(numFeatures: c)
        var rng = ReferenceRandom(seed: 4)
        let a = rng.batch(n: 8, c: c), b = rng.batch(n: 8, c: c)
        var mixed = b; for j in 0..<c { mixed[j] = a[j] }   // same first sample, other companions
        let trainA = try bn.forward(.of([8, c], a)).copy(), trainMixed = try bn.forward(.of([8, c], mixed)).copy()
        #expect(Array(trainA.scalars[0..<c]) != Array(trainMixed.scalars[0..<c]))
        bn.eval()
        let evalA = try bn.forward(.of([8, c], a)).copy(), evalMixed = try bn.forward(.of([8, c], mixed)).copy()
        #expect(Array(evalA.scalars[0..<c]) == Array(evalMixed.scalars[0..<c]))
        let single = try bn.forward(.of([1, c], Array(a[0..<c])))
        #expect(single.scalars == Array(evalA.scalars[0..<c]), "eval accepts a batch of one and gives the same row")
    }

    @Test("hard numerics: mean 1e4 with std 0.1 normalizes to unit variance")
    func largeMean() throws {
        let n = 512, c = 3
        var rng = ReferenceRandom(seed: 8)
        let x = (0..<n * c).map { _ in Float(1e4 + 0.1 * rng.normal()) }
        let bn = try BatchNorm1d(numFeatures: c)
        let y = try bn.forward(.of([n, c], x))
        let want = BatchNormReference.forwardTrain(x, n: n, c: c, gamma: [1, 1, 1], beta: [0, 0, 0], eps: 1e-5)
        // x is quantized to Float32 (ulp 1e-3 at 1e4) in both; the layer must
        // not add error beyond that: outputs O(1) agree to 1e-4.
        #expect(expectClose(y.scalars, want, rtol: 0, atol: 1e-4, "y").ok)
        let dx = try bn.backward(.of([n, c], rng.normals(n * c)))
        #expect(dx.scalars.allSatisfy { $0.isFinite })
    }

    @Test("hard numerics: a constant feature gives β and finite gradients")
    func constantFeature() throws {
        let n = 16, c = 2
        let bn = try BatchNorm1d(numFeatures: c)
        bn.bias!.value.withUnsafeMutableBufferPointer { $0[0] = 0.75; $0[1] = -2 }
        var x = [Float](repeating: 3.5, count: n * c)
        var rng = ReferenceRandom(seed: 2)
        for s in 0..<n { x[s * c + 1] = Float(rng.normal()) }
        let y = try bn.forward(.of([n, c], x))
        #expect((0..<n).allSatisfy { y.scalars[$0 * c] == 0.75 })
        let dx = try bn.backward(.of([n, c], rng.normals(n * c)))
        #expect(dx.scalars.allSatisfy { $0.isFinite })
        #expect(bn.weight!.grad.scalars.allSatisfy { $0.isFinite })
    }

    @Test("trackRunningStats: false normalizes with batch statistics in eval mode too")
    func noRunningStats() throws {
        let bn = try BatchNorm1d(numFeatures: 3, affine: false, trackRunningStats: false)
        #expect(bn.namedStateEntries(prefix: "").isEmpty)
        bn.eval()
        var rng = ReferenceRandom(seed: 5)
        let x = rng.batch(n: 10, c: 3)
        let y = try bn.forward(.of([10, 3], x))
        let want = BatchNormReference.forwardTrain(x, n: 10, c: 3, gamma: [1, 1, 1], beta: [0, 0, 0], eps: 1e-5)
        #expect(expectClose(y.scalars, want, rtol: 1e-5, atol: 2e-5, "y").ok)
    }
}
