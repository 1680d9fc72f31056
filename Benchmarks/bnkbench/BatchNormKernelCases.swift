// --kernels: every public BatchNorm kernel alone (no layer around it),
// against its naive twin and its own streaming bound (the GroupNorm ones:
// GroupNormCases.swift). Shows how much of a layer case is
// kernel and how much is the layer's per-feature bookkeeping. One case per
// kernel: `kernel.NAME` for BatchNormKernel.NAME, `kernel.gn.NAME` for
// GroupNormKernel.NAME (TwinRuleTests checks that every kernel has one).

import BatchNormKernels
import BatchNormReference
import BatchNormTestSupport

func kernelCases(_ bench: Bench, shape: BatchNormShape) throws {
    let names = ["kernel.moments \(shape)", "kernel.normalizeAffine \(shape)", "kernel.backwardReduce \(shape)",
                 "kernel.backwardInput \(shape)", "kernel.forwardConstants \(shape)", "kernel.backwardConstants \(shape)",
                 "kernel.updateRunningStatistics \(shape)"]
    guard names.contains(where: bench.wants) else { return }
    let n = shape.n, c = shape.c, l = shape.l, count = shape.elementCount, s = count * 4
    var rng = ReferenceRandom(seed: UInt64(count))
    let x = FloatBuffer(count: count), dy = FloatBuffer(count: count), out = FloatBuffer(count: count)
    let xs = rng.batch(n: n, c: c, l: l), dys = rng.normals(count)
    for i in 0..<count { x.pointer[i] = xs[i]; dy.pointer[i] = dys[i] }
    let k = FloatBuffer(count: c), a = FloatBuffer(count: c, fill: 0.5), b = FloatBuffer(count: c, fill: 0.25)
    let g = FloatBuffer(count: c, fill: 0.75), scratch = FloatBuffer(count: 2 * c)
    let runningMean = FloatBuffer(count: c), runningVar = FloatBuffer(count: c, fill: 1)
    for f in 0..<c { k.pointer[f] = x.pointer[f * l] }
    let doubles = UnsafeMutablePointer<Double>.allocate(capacity: 4 * c)
    doubles.initialize(repeating: 0.5, count: 4 * c)
    defer { doubles.deallocate() }
    let s1 = doubles, s2 = doubles + c, invStd = doubles + 2 * c, meanOffset = doubles + 3 * c
    var moments = FeatureMoments(featureCount: c)
    BatchNormKernel.moments(x.pointer, shape: shape, into: &moments)
    var tracked: Int64 = 0
    // the bound streams with as many threads as the kernels split this batch into
    bench.roofline.streamThreads = BatchNormKernel._threadParts(shape)
    defer { bench.roofline.streamThreads = 1 }
    let (refN, xr, dyr, rows) = referencePrefix(shape, xs, dys)
    let shiftD = (0..<c).map { Double(k.pointer[$0]) }, half = [Double](repeating: 0.5, count: c)
    let refMoments = BatchNormReference.moments(xr, n: refN, c: c, l: l)
    func readBound(_ bytes: Int) -> Limit {
        let r = bench.roofline.bandwidth(.read, bytes: bytes)
        return Limit(kind: "R \(formatBytes(bytes))", boundTime: Double(bytes) / (r * 1e9), details: [("read_GBps", r)])
    }

    try bench.run(names[0], group: "kernel", metric: .bytes(Double(s)),
                  reference: { blackHole(BatchNormReference.moments(xr, n: refN, c: c, l: l).m2) }, referenceRows: rows,
                  fast: { BatchNormKernel.moments(x.pointer, shape: shape, into: &moments); blackHole(moments.m2) },
                  limit: { readBound(s) })
    try bench.run(names[1], group: "kernel", metric: .bytes(Double(2 * s)),
                  reference: { blackHole(BatchNormReference.normalizeAffine(xr, n: refN, c: c, l: l, shift: shiftD,
                                                                            scale: half, bias: half)) },
                  referenceRows: rows,
                  fast: {
                      BatchNormKernel.normalizeAffine(x.pointer, shape: shape, shift: k.pointer, scale: a.pointer,
                                                      bias: b.pointer, output: out.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.forwardEvalBound(tensorBytes: s) })
    try bench.run(names[2], group: "kernel", metric: .bytes(Double(2 * s)),
                  reference: { blackHole(BatchNormReference.backwardReduce(gradOutput: dyr, input: xr, n: refN, c: c, l: l,
                                                                           shift: shiftD).sumGrad) },
                  referenceRows: rows,
                  fast: {
                      BatchNormKernel.backwardReduce(gradOutput: dy.pointer, input: x.pointer, shape: shape, shift: k.pointer,
                                                     sumGrad: s1, sumGradShifted: s2, scratch: scratch.pointer)
                      blackHole(s2[c - 1])
                  },
                  limit: { readBound(2 * s) })
    try bench.run(names[3], group: "kernel", metric: .bytes(Double(3 * s)),
                  reference: { blackHole(BatchNormReference.backwardInput(gradOutput: dyr, input: xr, n: refN, c: c, l: l,
                                                                          shift: shiftD, gradScale: half, inputScale: half,
                                                                          constant: half)) },
                  referenceRows: rows,
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
    // the O(C) kernels: no memory bound worth stating (a few arrays of C)
    try bench.run(names[4], group: "kernel", metric: .samples(c),
                  reference: { blackHole(BatchNormReference.forwardConstants(moments: refMoments, shift: shiftD, gamma: half,
                                                                             beta: half, eps: eps).bias) },
                  fast: {
                      BatchNormKernel.forwardConstants(moments: moments, gamma: g.pointer, beta: b.pointer, eps: Float(eps),
                                                       shift: k.pointer, scale: a.pointer, bias: out.pointer,
                                                       invStd: invStd, meanOffset: meanOffset)
                      blackHole(out.pointer, c)
                  },
                  limit: { nil })
    try bench.run(names[5], group: "kernel", metric: .samples(c),
                  reference: { blackHole(BatchNormReference.backwardConstants(sumGrad: half, sumGradShifted: half, invStd: half,
                                                                              meanOffset: half, gamma: half, valuesPerFeature: n * l,
                                                                              usedBatchStatistics: true).constant) },
                  fast: {
                      s2.update(repeating: 0.5, count: c)
                      BatchNormKernel.backwardConstants(sumGrad: s1, sumGradShifted: s2, invStd: invStd, meanOffset: meanOffset,
                                                        featureCount: c, gamma: g.pointer, valuesPerFeature: n * l,
                                                        usedBatchStatistics: true, gammaGrad: nil, betaGrad: nil,
                                                        gradScale: a.pointer, inputScale: b.pointer, constant: out.pointer)
                      blackHole(out.pointer, c)
                  },
                  limit: { nil })
    var refMean = half, refVar = half, refTracked = 0
    try bench.run(names[6], group: "kernel", metric: .samples(c),
                  reference: {
                      BatchNormReference.updateRunningStatistics(runningMean: &refMean, runningVar: &refVar, moments: refMoments,
                                                                 momentum: 0.1, numBatchesTracked: &refTracked)
                      blackHole(refVar)
                  },
                  fast: {
                      BatchNormKernel.updateRunningStatistics(runningMean: runningMean.pointer, runningVar: runningVar.pointer,
                                                              moments: moments, momentum: 0.1, numBatchesTracked: &tracked)
                      blackHole(runningVar.pointer, c)
                  },
                  limit: { nil })
}
