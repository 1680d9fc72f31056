// The fused BatchNorm → ReLU kernels alone (as BatchNormKernelCases.swift):
// `kernel.normalizeAffineReLU` against its naive twin and the streaming
// bound of its one read of x and one write of y.

import BatchNormKernels
import BatchNormReference
import BatchNormTestSupport

func fusedReLUKernelCases(_ bench: Bench, shape: BatchNormShape) throws {
    let name = "kernel.normalizeAffineReLU \(shape)"
    guard bench.wants(name) else { return }
    let n = shape.n, c = shape.c, l = shape.l, count = shape.elementCount, s = count * 4
    var rng = ReferenceRandom(seed: UInt64(count) + 1)
    let x = FloatBuffer(count: count), out = FloatBuffer(count: count)
    let xs = rng.batch(n: n, c: c, l: l)
    for i in 0..<count { x.pointer[i] = xs[i] }
    // shift = a sample of each feature, so about half the outputs clamp to 0
    let k = FloatBuffer(count: c), a = FloatBuffer(count: c, fill: 0.5), b = FloatBuffer(count: c, fill: 0)
    for f in 0..<c { k.pointer[f] = x.pointer[f * l] }
    bench.roofline.streamThreads = BatchNormKernel._threadParts(shape)
    defer { bench.roofline.streamThreads = 1 }
    let (refN, xr, _, rows) = referencePrefix(shape, xs, xs)   // no dy: x stands in
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
}
