// kernel.gemm.*: MatrixKernel.multiply alone on the seed network's products
// (forward NT, weight gradient TN, input gradient NN of every Linear at the
// linear batch), against its Double twin and OpenBLAS's sgemm on the same
// shape: "% lim" above 100 is MatrixKernel faster than OpenBLAS here. The
// library's backend rule (MatrixMultiplication.backend) is what these
// figures decide.

import BatchNormKernels
import MatrixKernels
import BatchNormReference
import BatchNormTestSupport

func matrixKernelCases(_ bench: Bench, inFeatures i: Int, outFeatures o: Int, batch n: Int) throws {
    // (form, transposeA, transposeB, m, n, k, β) as Linear calls them
    let products: [(String, Bool, Bool, Int, Int, Int, Float)] = [
        ("NT", false, true, n, o, i, 1), ("TN", true, false, o, i, n, 0), ("NN", false, false, n, i, o, 0),
    ]
    for (form, tA, tB, m, cols, k, beta) in products {
        let name = "kernel.gemm.multiply \(form) \(m)×\(cols)×\(k)"
        guard bench.wants(name) else { continue }
        var rng = ReferenceRandom(seed: UInt64(m * 7 + cols * 3 + k))
        let (aRows, aColumns) = tA ? (k, m) : (m, k), (bRows, bColumns) = tB ? (cols, k) : (k, cols)
        let a = FloatBuffer(count: aRows * aColumns), b = FloatBuffer(count: bRows * bColumns)
        let c = FloatBuffer(count: m * cols)
        let av = rng.normals(aRows * aColumns), bv = rng.normals(bRows * bColumns), cv = rng.normals(m * cols)
        for t in av.indices { a.pointer[t] = av[t] }
        for t in bv.indices { b.pointer[t] = bv[t] }
        func reset() { for t in cv.indices { c.pointer[t] = cv[t] } }
        let accumulate = beta == 1
        func run() {
            MatrixKernel.multiply(transposeA: tA, transposeB: tB, m: m, n: cols, k: k, a: a.pointer, lda: aColumns,
                                  b: b.pointer, ldb: bColumns, accumulate: accumulate, c: c.pointer, ldc: cols)
        }
        // the twin on the first rows of C only (op(A)'s first refM rows), scaled up
        let refM = min(m, max(1, (1 << 21) / (cols * k)))
        let aRef: [Float] = tA ? av : Array(av[..<(refM * aColumns)])
        try bench.run(name, group: "kernel", metric: .flops(2 * Double(m * cols * k)),
                      reference: {
                          blackHole(MatrixReference.multiply(transposeA: tA, transposeB: tB, m: refM, n: cols, k: k,
                                                             a: aRef, lda: aColumns, b: bv, ldb: bColumns))
                      },
                      referenceRows: (measured: refM, scaledTo: m),
                      fast: { run(); blackHole(c.pointer, m * cols) },
                      limit: {
                          let t = bench.roofline.sgemmTime(transA: tA, transB: tB, m: m, n: cols, k: k, beta: beta, openBLAS: true)
                          return Limit(kind: "OpenBLAS sgemm \(form)", boundTime: t,
                                       details: [("sgemm_GFLOPs", 2 * Double(m * cols * k) / t / 1e9)])
                      },
                      check: {
                          reset(); run()
                          let dense = accumulate ? cv : nil
                          let want = MatrixReference.multiply(transposeA: tA, transposeB: tB, m: m, n: cols, k: k,
                                                              a: av, lda: aColumns, b: bv, ldb: bColumns, adding: dense)
                          // Float32 chains of k multiply-adds against Double: a few ulps of √k-sized sums
                          let got = (0..<(m * cols)).map { c.pointer[$0] }
                          return Check.all([("c", compareToReference(got, want, rtol: 1e-4, atol: 1e-5 * Double(k).squareRoot()))])
                      })
    }
}
