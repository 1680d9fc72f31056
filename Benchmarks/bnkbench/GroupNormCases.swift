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
