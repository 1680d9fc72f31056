// linear.*: Linear forward and backward on the seed network's shapes,
// against the naive twins and plain sgemm.

import BatchNormKit
import BatchNormReference
import BatchNormTestSupport

// MARK: - Linear

func linearCases(_ bench: Bench, inFeatures i: Int, outFeatures o: Int, batch n: Int) throws {
    let names = ["linear.forward \(i)→\(o) N=\(n)", "linear.backward \(i)→\(o) N=\(n)"]
    guard names.contains(where: bench.wants) else { return }
    let lin = try Linear(inFeatures: i, outFeatures: o, seed: UInt64(i * 1000 + o))
    var rng = ReferenceRandom(seed: UInt64(i + o))
    let x = rng.normals(n * i), dy = rng.normals(n * o)
    let xt = try Tensor(shape: [n, i], scalars: x), dyt = try Tensor(shape: [n, o], scalars: dy)
    let w = lin.weight.value.scalars, b = lin.bias!.value.scalars
    let macs = Double(n * i * o)
    // the naive reference on at most 2²¹ multiply-adds (scaled up, see Bench.run)
    let refN = min(n, max(1, (1 << 21) / (i * o)))
    let xr = Array(x[..<(refN * i)]), dyr = Array(dy[..<(refN * o)])
    let rows = (measured: refN, scaledTo: n)
    let tol = (rtol: 1e-4, atol: 1e-5 * Double(max(i, n)).squareRoot())

    try bench.run(names[0], group: "linear", metric: .flops(2 * macs),
                  reference: { blackHole(BatchNormReference.linearForward(xr, n: refN, inFeatures: i, weight: w, bias: b, outFeatures: o)) },
                  referenceRows: rows,
                  fast: { blackHole(try lin.forward(xt)) },
                  limit: {
                      let t = bench.roofline.sgemmTime(transA: false, transB: true, m: n, n: o, k: i, beta: 1)
                      return Limit(kind: "\(bench.roofline.productName) NT", boundTime: t, details: [("sgemm_GFLOPs", 2 * macs / t / 1e9)])
                  },
                  check: {
                      let y = try lin.forward(xt)
                      let want = BatchNormReference.linearForward(x, n: n, inFeatures: i, weight: w, bias: b, outFeatures: o)
                      return Check.all([("y", compareToReference(y.scalars, want, rtol: tol.rtol, atol: tol.atol))])
                  })

    _ = try lin.forward(xt)
    try bench.run(names[1], group: "linear", metric: .flops(4 * macs),
                  reference: { blackHole(BatchNormReference.linearBackward(gradOutput: dyr, x: xr, n: refN, inFeatures: i,
                                                                           weight: w, outFeatures: o).input) },
                  referenceRows: rows,
                  fast: { blackHole(try lin.backward(dyt, needsInputGradient: true)) },
                  limit: {
                      let tw = bench.roofline.sgemmTime(transA: true, transB: false, m: o, n: i, k: n, beta: 1)
                      let tx = bench.roofline.sgemmTime(transA: false, transB: false, m: n, n: i, k: o, beta: 0)
                      return Limit(kind: "\(bench.roofline.productName) TN+NN", boundTime: tw + tx,
                                   details: [("sgemm_dW_GFLOPs", 2 * macs / tw / 1e9), ("sgemm_dX_GFLOPs", 2 * macs / tx / 1e9)])
                  },
                  check: {
                      lin.weight.grad.fill(0); lin.bias!.grad.fill(0)
                      let dx = try lin.backward(dyt, needsInputGradient: true)!
                      let want = BatchNormReference.linearBackward(gradOutput: dy, x: x, n: n, inFeatures: i, weight: w, outFeatures: o)
                      let sumTol = 1e-5 * Double(n).squareRoot()
                      return Check.all([
                          ("dx", compareToReference(dx.scalars, want.input, rtol: tol.rtol, atol: tol.atol)),
                          ("dW", compareToReference(lin.weight.grad.scalars, want.weight, rtol: 1e-4, atol: sumTol)),
                          ("db", compareToReference(lin.bias!.grad.scalars, want.bias, rtol: 1e-4, atol: sumTol)),
                      ])
                  })
}
