// --kernels: the four BatchNorm kernels alone (no layer around them), each
// against its own streaming bound. Shows how much of a layer case is kernel
// and how much is the layer's per-feature bookkeeping.

import BatchNormKernels
import BatchNormReference

func kernelCases(_ bench: Bench, shape: BatchNormShape) throws {
    let names = ["moments", "normalizeAffine", "backwardReduce", "backwardInput"].map { "kernel.\($0) \(shape)" }
    guard names.contains(where: bench.wants) else { return }
    let c = shape.c, count = shape.elementCount, s = count * 4
    var rng = ReferenceRandom(seed: UInt64(count))
    let x = FloatBuffer(count: count), dy = FloatBuffer(count: count), out = FloatBuffer(count: count)
    let xs = rng.batch(n: shape.n, c: c, l: shape.l), dys = rng.normals(count)
    for i in 0..<count { x.pointer[i] = xs[i]; dy.pointer[i] = dys[i] }
    let k = FloatBuffer(count: c), a = FloatBuffer(count: c, fill: 0.5), b = FloatBuffer(count: c, fill: 0.25)
    let g = FloatBuffer(count: c, fill: 0.75), scratch = FloatBuffer(count: 2 * c)
    for f in 0..<c { k.pointer[f] = x.pointer[f * shape.l] }
    let s1 = UnsafeMutablePointer<Double>.allocate(capacity: c), s2 = UnsafeMutablePointer<Double>.allocate(capacity: c)
    defer { s1.deallocate(); s2.deallocate() }
    var moments = FeatureMoments(featureCount: c)
    let kernelParts = BatchNormKernel.threadCount > 1 && count >= BatchNormKernel.parallelThreshold
        ? min(BatchNormKernel.threadCount, shape.n) : 1
    bench.roofline.streamThreads = kernelParts
    defer { bench.roofline.streamThreads = 1 }

    try bench.run(names[0], group: "kernel", metric: .bytes(Double(s)), reference: nil,
                  fast: { BatchNormKernel.moments(x.pointer, shape: shape, into: &moments); blackHole(moments.m2) },
                  limit: {
                      let r = bench.roofline.bandwidth(.read, bytes: s)
                      return Limit(kind: "R \(formatBytes(s))", boundTime: Double(s) / (r * 1e9), details: [("read_GBps", r)])
                  })
    try bench.run(names[1], group: "kernel", metric: .bytes(Double(2 * s)), reference: nil,
                  fast: {
                      BatchNormKernel.normalizeAffine(x.pointer, shape: shape, shift: k.pointer, scale: a.pointer,
                                                      bias: b.pointer, output: out.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.forwardEvalBound(tensorBytes: s) })
    try bench.run(names[2], group: "kernel", metric: .bytes(Double(2 * s)), reference: nil,
                  fast: {
                      BatchNormKernel.backwardReduce(gradOutput: dy.pointer, input: x.pointer, shape: shape, shift: k.pointer,
                                                     sumGrad: s1, sumGradShifted: s2, scratch: scratch.pointer)
                      blackHole(s2[c - 1])
                  },
                  limit: {
                      let r = bench.roofline.bandwidth(.read, bytes: 2 * s)
                      return Limit(kind: "R \(formatBytes(2 * s))", boundTime: Double(2 * s) / (r * 1e9), details: [("read_GBps", r)])
                  })
    try bench.run(names[3], group: "kernel", metric: .bytes(Double(3 * s)), reference: nil,
                  fast: {
                      BatchNormKernel.backwardInput(gradOutput: dy.pointer, input: x.pointer, shape: shape, shift: k.pointer,
                                                    gradScale: g.pointer, inputScale: a.pointer, constant: b.pointer,
                                                    gradInput: out.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: {
                      let r = bench.roofline.bandwidth(.read2Write, bytes: 3 * s)
                      return Limit(kind: "2RW \(formatBytes(3 * s))", boundTime: Double(3 * s) / (r * 1e9), details: [("read2_write_GBps", r)])
                  })
}
