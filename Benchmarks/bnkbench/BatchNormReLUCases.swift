// The fused BatchNorm → ReLU kernels alone (as BatchNormKernelCases.swift),
// each against its naive twin and a streaming bound: `kernel.normalizeAffineReLU`
// (one read of x, one write of y), `kernel.backwardReduceReLU` (reads of dy
// and x: the mask's sign is recomputed from x), `kernel.backwardInputReLU`
// (reads of dy and x, one write of dx) — the bounds of their unfused kernels.

import BatchNormKit
import BatchNormKernels
import BatchNormReference
import BatchNormTestSupport

func fusedReLUKernelCases(_ bench: Bench, shape: BatchNormShape) throws {
    let name = "kernel.normalizeAffineReLU \(shape)"
    let names = [name, "kernel.backwardReduceReLU \(shape)", "kernel.backwardInputReLU \(shape)"]
    guard names.contains(where: bench.wants) else { return }
    let n = shape.n, c = shape.c, l = shape.l, count = shape.elementCount, s = count * 4
    var rng = ReferenceRandom(seed: UInt64(count) + 1)
    let x = FloatBuffer(count: count), out = FloatBuffer(count: count)
    let xs = rng.batch(n: n, c: c, l: l), dys = rng.normals(count)
    let dy = FloatBuffer(count: count), dx = FloatBuffer(count: count)
    for i in 0..<count { x.pointer[i] = xs[i]; dy.pointer[i] = dys[i] }
    // shift = a sample of each feature, so about half the outputs clamp to 0
    let k = FloatBuffer(count: c), a = FloatBuffer(count: c, fill: 0.5), b = FloatBuffer(count: c, fill: 0)
    for f in 0..<c { k.pointer[f] = x.pointer[f * l] }
    bench.roofline.streamThreads = BatchNormKernel._threadParts(shape)
    defer { bench.roofline.streamThreads = 1 }
    let (refN, xr, dyr, rows) = referencePrefix(shape, xs, dys)
    let shiftD = (0..<c).map { Double(k.pointer[$0]) }
    let half = [Double](repeating: 0.5, count: c), zero = [Double](repeating: 0, count: c)
    // one read of x and one write of y, as normalizeAffine: the bound is the same
    try bench.run(name, group: "kernel", metric: .bytes(Double(2 * s)),
                  reference: { blackHole(BatchNormReference.normalizeAffineReLU(xr, n: refN, c: c, l: l, shift: shiftD,
                                                                                scale: half, bias: zero)) },
                  referenceRows: rows,
                  fast: {
                      BatchNormKernel.normalizeAffineReLU(x.pointer, shape: shape, shift: k.pointer, scale: a.pointer,
                                                          bias: b.pointer, output: out.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.forwardEvalBound(tensorBytes: s) })
    // the backward masks by the forward's pre-activation: about half the
    // gradient; six distinct constant arrays, as the layer passes
    let g = FloatBuffer(count: c, fill: 0.5), h = FloatBuffer(count: c, fill: 0.5), z = FloatBuffer(count: c, fill: 0.5)
    let sums = UnsafeMutablePointer<Double>.allocate(capacity: 2 * c)
    sums.initialize(repeating: 0, count: 2 * c)
    defer { sums.deallocate() }
    let scratch = FloatBuffer(count: 2 * c)
    try bench.run(names[1], group: "kernel", metric: .bytes(Double(2 * s)),
                  reference: { blackHole(BatchNormReference.backwardReduceReLU(gradOutput: dyr, input: xr, n: refN, c: c, l: l,
                                                                               shift: shiftD, scale: half, bias: zero).sumGrad) },
                  referenceRows: rows,
                  fast: {
                      BatchNormKernel.backwardReduceReLU(gradOutput: dy.pointer, input: x.pointer, shape: shape,
                                                         shift: k.pointer, scale: a.pointer, bias: b.pointer, sumGrad: sums,
                                                         sumGradShifted: sums + c, scratch: scratch.pointer)
                      blackHole(sums[2 * c - 1])
                  },
                  limit: {
                      let r = bench.roofline.bandwidth(.read, bytes: 2 * s)
                      return Limit(kind: "R \(formatBytes(2 * s))", boundTime: Double(2 * s) / (r * 1e9), details: [("read_GBps", r)])
                  })
    try bench.run(names[2], group: "kernel", metric: .bytes(Double(3 * s)),
                  reference: { blackHole(BatchNormReference.backwardInputReLU(gradOutput: dyr, input: xr, n: refN, c: c, l: l,
                                                                              shift: shiftD, scale: half, bias: zero,
                                                                              gradScale: half, inputScale: half,
                                                                              constant: half)) },
                  referenceRows: rows,
                  fast: {
                      BatchNormKernel.backwardInputReLU(gradOutput: dy.pointer, input: x.pointer, shape: shape,
                                                        shift: k.pointer, scale: a.pointer, bias: b.pointer,
                                                        gradScale: g.pointer, inputScale: h.pointer, constant: z.pointer,
                                                        gradInput: dx.pointer)
                      blackHole(dx.pointer, count)
                  },
                  limit: {
                      let r = bench.roofline.bandwidth(.read2Write, bytes: 3 * s)
                      return Limit(kind: "2RW \(formatBytes(3 * s))", boundTime: Double(3 * s) / (r * 1e9),
                                   details: [("read2_write_GBps", r)])
                  })
}

// MARK: - bn-relu.*: BatchNorm → ReLU, fused, against PyTorch's BatchNorm1d + ReLU

/// `bn-relu.forward-train` (moments, constants, running statistics, the fused
/// normalize) and `bn-relu.backward` (masked reduction, constants with dγ, dβ,
/// masked dx) through BatchNorm1d's fused pair, `forwardReLU` / `backwardReLU`
/// (what Sequential runs for BatchNorm1d → ReLU), against the naive
/// twins of BatchNorm1d followed by ReLU, and the bounds of bn.forward-train
/// (read x; read x, write y) and bn.backward (read dy, x; read them again and
/// write dx: the mask comes from x, not from a read of y).
/// Scripts/bench_torch.py times PyTorch's eager `relu(bn(x))` under the
/// same names.
func batchNormReLUCases(_ bench: Bench, shape: BatchNormShape) throws {
    let names = ["bn-relu.forward-train \(shape)", "bn-relu.backward \(shape)"]
    guard names.contains(where: bench.wants) else { return }
    let n = shape.n, c = shape.c, l = shape.l, count = shape.elementCount, s = count * 4
    var rng = ReferenceRandom(seed: UInt64(count) + 2)
    let xs = rng.batch(n: n, c: c, l: l), dys = rng.normals(count)
    let gamma = (0..<c).map { _ in 0.5 + rng.unit() }, beta = (0..<c).map { _ in 0.5 * rng.normal() }
    let x = try Tensor(shape: tensorShape(shape), scalars: xs), dy = try Tensor(shape: tensorShape(shape), scalars: dys)
    let bn = try BatchNorm1d(numFeatures: c)
    bn.weight!.value.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(gamma[i]) } }
    bn.bias!.value.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(beta[i]) } }
    bench.roofline.streamThreads = BatchNormKernel._threadParts(shape)
    defer { bench.roofline.streamThreads = 1 }
    let (refN, xr, dyr, rows) = referencePrefix(shape, xs, dys)
    func referenceForward() -> [Double] {
        BatchNormReference.forwardTrain(xr, n: refN, c: c, l: l, gamma: gamma, beta: beta, eps: eps).map { max(0, $0) }
    }
    try bench.run(names[0], group: "bn-relu", metric: .bytes(Double(3 * s)),
                  reference: { blackHole(referenceForward()) }, referenceRows: rows,
                  fast: { blackHole(try bn.forwardReLU(x)) },
                  limit: { bench.roofline.forwardTrainBound(tensorBytes: s) },
                  pattern: { bench.roofline.patternTime(Roofline.forwardTrainPasses, tensorBytes: s) })
    _ = try bn.forwardReLU(x)   // y and the constants the backward reads
    let yr = referenceForward().map(Float.init)
    try bench.run(names[1], group: "bn-relu", metric: .bytes(Double(5 * s)),
                  reference: {
                      let masked = zip(dyr, yr).map { $1 > 0 ? $0 : 0 }
                      blackHole(BatchNormReference.backwardTrain(gradOutput: masked, input: xr, n: refN, c: c, l: l,
                                                                 gamma: gamma, eps: eps).input)
                  },
                  referenceRows: rows,
                  fast: { blackHole(try bn.backwardReLU(dy, needsInputGradient: true)) },
                  limit: { bench.roofline.backwardBound(tensorBytes: s) },
                  pattern: { bench.roofline.patternTime(Roofline.backwardPasses, tensorBytes: s) })
}
