// bn.*: BatchNorm1d forward-train, forward-eval and backward against the
// naive twins (BatchNormReference+BatchNormLayers.swift) and the streaming bounds.

import BatchNormKit
import BatchNormKernels
import BatchNormReference
import BatchNormTestSupport

// MARK: - BatchNorm1d

func batchNormCases(_ bench: Bench, shape: BatchNormShape) throws {
    let names = ["forward-train", "forward-eval", "backward"].map { "bn.\($0) \(shape)" }
    guard names.contains(where: bench.wants) else { return }
    let n = shape.n, c = shape.c, l = shape.l
    var rng = ReferenceRandom(seed: UInt64(shape.elementCount + c))
    let x = rng.batch(n: n, c: c, l: l)
    let dy = rng.normals(x.count)
    let gamma = (0..<c).map { _ in 0.5 + rng.unit() }, beta = (0..<c).map { _ in rng.normal() }
    let runMean = (0..<c).map { _ in 0.5 * rng.normal() }, runVar = (0..<c).map { _ in 0.5 + rng.unit() }

    let xt = try Tensor(shape: tensorShape(shape), scalars: x)
    let dyt = try Tensor(shape: tensorShape(shape), scalars: dy)
    let bn = try BatchNorm1d(numFeatures: c)
    bn.weight!.value.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(gamma[i]) } }
    bn.bias!.value.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(beta[i]) } }
    func setRunning() {
        bn.runningMean!.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(runMean[i]) } }
        bn.runningVar!.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(runVar[i]) } }
    }
    let tensorBytes = x.count * 4
    bench.roofline.streamThreads = BatchNormKernel._threadParts(shape)
    defer { bench.roofline.streamThreads = 1 }
    let (refN, xr, dyr, rows) = referencePrefix(shape, x, dy)

    bn.train()
    try bench.run(names[0], group: "bn", metric: .bytes(Double(3 * tensorBytes)),
                  reference: { blackHole(BatchNormReference.forwardTrain(xr, n: refN, c: c, l: l, gamma: gamma, beta: beta, eps: eps)) },
                  referenceRows: rows,
                  fast: { blackHole(try bn.forward(xt)) },
                  limit: { bench.roofline.forwardTrainBound(tensorBytes: tensorBytes) },
                  pattern: { bench.roofline.patternTime(Roofline.forwardTrainPasses, tensorBytes: tensorBytes) })

    bn.eval()
    setRunning()
    try bench.run(names[1], group: "bn", metric: .bytes(Double(2 * tensorBytes)),
                  reference: { blackHole(BatchNormReference.forwardEval(xr, n: refN, c: c, l: l, runningMean: runMean, runningVar: runVar,
                                                                         gamma: gamma, beta: beta, eps: eps)) },
                  referenceRows: rows,
                  fast: { blackHole(try bn.forward(xt)) },
                  limit: { bench.roofline.forwardEvalBound(tensorBytes: tensorBytes) },
                  pattern: { bench.roofline.patternTime(Roofline.forwardEvalPasses, tensorBytes: tensorBytes) })

    bn.train()
    _ = try bn.forward(xt)
    try bench.run(names[2], group: "bn", metric: .bytes(Double(5 * tensorBytes)),
                  reference: { blackHole(BatchNormReference.backwardTrain(gradOutput: dyr, input: xr, n: refN, c: c, l: l,
                                                                          gamma: gamma, eps: eps).input) },
                  referenceRows: rows,
                  fast: { blackHole(try bn.backward(dyt, needsInputGradient: true)) },
                  limit: { bench.roofline.backwardBound(tensorBytes: tensorBytes) },
                  pattern: { bench.roofline.patternTime(Roofline.backwardPasses, tensorBytes: tensorBytes) })
}

/// The first rows of a batch for the naive twin, at most 2¹⁸ values (at
/// least 2 rows): its time is scaled up by `rows` (see Bench.run).
func referencePrefix(_ shape: BatchNormShape, _ x: [Float], _ dy: [Float])
    -> (n: Int, x: [Float], dy: [Float], rows: (measured: Int, scaledTo: Int)) {
    let perRow = shape.c * shape.l, n = min(shape.n, max(2, (1 << 18) / perRow))
    return (n, Array(x[..<(n * perRow)]), Array(dy[..<(n * perRow)]), (n, shape.n))
}
