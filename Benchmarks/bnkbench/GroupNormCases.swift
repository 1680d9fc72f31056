// Per-sample normalization: LayerNorm (groups 1) and GroupNorm layers,
// forward and backward, against GroupNormReference and the same streaming
// bounds as BatchNorm's training forward and backward (each row is read
// twice and written once forward; dy and x read twice and dx written once
// backward — rows are short, so the second reads mostly hit cache and the
// bound is conservative).

import BatchNormKit
import BatchNormKernels
import BatchNormReference
import BatchNormTestSupport

/// `gn.forward (256, 256)` names a LayerNorm over rows of 256;
/// `gn.forward (64, 128, 256) in 32 groups` a GroupNorm.
func groupNormCases(_ bench: Bench, shape: GroupNormShape) throws {
    let names = ["forward", "backward"].map { "gn.\($0) \(shape)" }
    guard names.contains(where: bench.wants) else { return }
    let n = shape.n, c = shape.c, g = shape.groups, l = shape.l
    var rng = ReferenceRandom(seed: UInt64(shape.elementCount + g))
    let x = rng.batch(n: n, c: c, l: l), dy = rng.normals(x.count)
    let gamma = (0..<c).map { _ in 0.5 + rng.unit() }, beta = (0..<c).map { _ in rng.normal() }
    let dims = l == 1 ? [n, c] : [n, c, l]
    let xt = try Tensor(shape: dims, scalars: x), dyt = try Tensor(shape: dims, scalars: dy)
    let layer: _GroupNormalization = g == 1 && l == 1
        ? try LayerNorm(normalizedShape: [c]) : try GroupNorm(numGroups: g, numChannels: c)
    layer.weight!.value.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(gamma[i]) } }
    layer.bias!.value.withUnsafeMutableBufferPointer { p in for i in 0..<c { p[i] = Float(beta[i]) } }
    let tensorBytes = x.count * 4
    // the naive reference on at most 2¹⁸ values (scaled up, see Bench.run)
    let refN = min(n, max(1, (1 << 18) / (c * l)))
    let xr = Array(x[..<(refN * c * l)]), dyr = Array(dy[..<(refN * c * l)])
    let rows = (measured: refN, scaledTo: n)

    try bench.run(names[0], group: "gn", metric: .bytes(Double(3 * tensorBytes)),
                  reference: { blackHole(GroupNormReference.forward(xr, n: refN, c: c, groups: g, l: l,
                                                                    gamma: gamma, beta: beta, eps: eps)) },
                  referenceRows: rows,
                  fast: { blackHole(try layer.forward(xt)) },
                  limit: { bench.roofline.forwardTrainBound(tensorBytes: tensorBytes) })

    _ = try layer.forward(xt)
    try bench.run(names[1], group: "gn", metric: .bytes(Double(5 * tensorBytes)),
                  reference: { blackHole(GroupNormReference.backward(gradOutput: dyr, input: xr, n: refN, c: c, groups: g,
                                                                     l: l, gamma: gamma, eps: eps).gradInput) },
                  referenceRows: rows,
                  fast: { blackHole(try layer.backward(dyt, needsInputGradient: true)) },
                  limit: { bench.roofline.backwardBound(tensorBytes: tensorBytes) })
}

// MARK: - kernel.gn.*: the kernels alone (--kernels)

/// GroupNormKernel's kernels alone, against GroupNormReference; the fused
/// ReLU forms with the bounds of their unfused kernels (the clamp adds no
/// memory traffic; the mask adds one read of y per backward pass, from cache
/// on the second).
func groupNormKernelCases(_ bench: Bench, shape: GroupNormShape) throws {
    let names = ["kernel.gn.forward \(shape)", "kernel.gn.normalize \(shape)", "kernel.gn.backward \(shape)",
                 "kernel.gn.forwardReLU \(shape)", "kernel.gn.backwardReLU \(shape)"]
    guard names.contains(where: bench.wants) else { return }
    let n = shape.n, c = shape.c, groups = shape.groups, l = shape.l, count = shape.elementCount, s = count * 4
    var rng = ReferenceRandom(seed: UInt64(count + groups))
    let x = FloatBuffer(count: count), dy = FloatBuffer(count: count), out = FloatBuffer(count: count)
    let y = FloatBuffer(count: count)
    let xs = rng.batch(n: n, c: c, l: l), dys = rng.normals(count)
    for i in 0..<count { x.pointer[i] = xs[i]; dy.pointer[i] = dys[i] }
    let gamma = FloatBuffer(count: c, fill: 0.75), beta = FloatBuffer(count: c, fill: 0.25)
    let shift = FloatBuffer(count: shape.rows), sums = FloatBuffer(count: 2 * c)
    let doubles = UnsafeMutablePointer<Double>.allocate(capacity: 2 * shape.rows + 2 * c)
    doubles.initialize(repeating: 0, count: 2 * shape.rows + 2 * c)
    defer { doubles.deallocate() }
    let meanOffset = doubles, invStd = doubles + shape.rows, totals = doubles + 2 * shape.rows
    GroupNormKernel.forward(x.pointer, shape: shape, gamma: gamma.pointer, beta: beta.pointer, eps: Float(eps),
                            output: out.pointer, shift: shift.pointer, meanOffset: meanOffset, invStd: invStd)
    let refN = min(n, max(1, (1 << 18) / (c * l)))
    let xr = Array(xs[..<(refN * c * l)]), dyr = Array(dys[..<(refN * c * l)])
    let rows = (measured: refN, scaledTo: n)
    let g = [Double](repeating: 0.75, count: c), b = [Double](repeating: 0.25, count: c)
    let stats = GroupNormReference.statistics(xr, n: refN, c: c, groups: groups, l: l, eps: eps)

    try bench.run(names[0], group: "kernel", metric: .bytes(Double(3 * s)),
                  reference: { blackHole(GroupNormReference.forward(xr, n: refN, c: c, groups: groups, l: l,
                                                                    gamma: g, beta: b, eps: eps)) },
                  referenceRows: rows,
                  fast: {
                      GroupNormKernel.forward(x.pointer, shape: shape, gamma: gamma.pointer, beta: beta.pointer, eps: Float(eps),
                                              output: out.pointer, shift: shift.pointer, meanOffset: meanOffset, invStd: invStd)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.forwardTrainBound(tensorBytes: s) })
    try bench.run(names[1], group: "kernel", metric: .bytes(Double(2 * s)),
                  reference: { blackHole(GroupNormReference.normalize(xr, n: refN, c: c, groups: groups, l: l, gamma: g, beta: b,
                                                                      mean: stats.mean, invStd: stats.invStd)) },
                  referenceRows: rows,
                  fast: {
                      GroupNormKernel.normalize(x.pointer, shape: shape, gamma: gamma.pointer, beta: beta.pointer,
                                                shift: shift.pointer, meanOffset: meanOffset, invStd: invStd, output: out.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.forwardEvalBound(tensorBytes: s) })
    try bench.run(names[2], group: "kernel", metric: .bytes(Double(5 * s)),
                  reference: { blackHole(GroupNormReference.backward(gradOutput: dyr, input: xr, n: refN, c: c, groups: groups,
                                                                     l: l, gamma: g, eps: eps).gradInput) },
                  referenceRows: rows,
                  fast: {
                      GroupNormKernel.backward(gradOutput: dy.pointer, input: x.pointer, shape: shape, gamma: gamma.pointer,
                                               shift: shift.pointer, meanOffset: meanOffset, invStd: invStd,
                                               gradInput: out.pointer, gammaGrad: nil, betaGrad: nil,
                                               totals: totals, blockSums: sums.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.backwardBound(tensorBytes: s) })
    // β = 0.25 with γ = 0.75: somewhat under half the outputs clamp
    try bench.run(names[3], group: "kernel", metric: .bytes(Double(3 * s)),
                  reference: { blackHole(GroupNormReference.forwardReLU(xr, n: refN, c: c, groups: groups, l: l,
                                                                        gamma: g, beta: b, eps: eps)) },
                  referenceRows: rows,
                  fast: {
                      GroupNormKernel.forwardReLU(x.pointer, shape: shape, gamma: gamma.pointer, beta: beta.pointer, eps: Float(eps),
                                                  output: y.pointer, shift: shift.pointer, meanOffset: meanOffset, invStd: invStd)
                      blackHole(y.pointer, count)
                  },
                  limit: { bench.roofline.forwardTrainBound(tensorBytes: s) })
    // y: the fused forward's output (also when only the backward runs)
    GroupNormKernel.forwardReLU(x.pointer, shape: shape, gamma: gamma.pointer, beta: beta.pointer, eps: Float(eps),
                                output: y.pointer, shift: shift.pointer, meanOffset: meanOffset, invStd: invStd)
    let yr = GroupNormReference.forwardReLU(xr, n: refN, c: c, groups: groups, l: l, gamma: g, beta: b, eps: eps).map(Float.init)
    try bench.run(names[4], group: "kernel", metric: .bytes(Double(6 * s)),
                  reference: { blackHole(GroupNormReference.backwardReLU(gradOutput: dyr, output: yr, input: xr, n: refN, c: c,
                                                                         groups: groups, l: l, gamma: g, eps: eps).gradInput) },
                  referenceRows: rows,
                  fast: {
                      GroupNormKernel.backwardReLU(gradOutput: dy.pointer, output: y.pointer, input: x.pointer, shape: shape,
                                                   gamma: gamma.pointer, shift: shift.pointer, meanOffset: meanOffset,
                                                   invStd: invStd, gradInput: out.pointer, gammaGrad: nil, betaGrad: nil,
                                                   totals: totals, blockSums: sums.pointer)
                      blackHole(out.pointer, count)
                  },
                  limit: { bench.roofline.backwardBound(tensorBytes: s) })
}
