import Testing
import BatchNormKernels
import KernelSupport
import BatchNormReference

// The reductions' register strips (`BatchNormKernel.reductionStrips`): on a
// batch from memory with short rows they sum 256 features at a time in
// registers instead of one row at a time through the L1 block sums. Every
// feature gets the same Float32 additions in the same order either way, so
// the sums must agree bit for bit — on one thread and split in two — and
// with the Double reference to BatchNormKernelTests' tolerances. The ReLU
// reduction's row loop reads at least two rows per pass (two chains:
// `_PairTerms.leastRowGroup`), so its sums are checked against the
// reference only, from both loops.
//
// `cacheResidentBytes: 0` makes every batch count as read from memory, so
// the row loop reads these small shapes one row at a time, the order the
// strips keep; with the default residency the row loop reads them several
// rows at a time in two chains, and the strips' sums are checked against
// the reference only. C = 256 (one strip), 275 and 531 (strips, then 19
// features row by row); `_takesStrips` is checked for each.

let stripShapes = [BatchNormShape(n: 130, c: 256), BatchNormShape(n: 70, c: 275), BatchNormShape(n: 65, c: 531),
                   BatchNormShape(n: 3, c: 256)]

/// The three reductions' outputs: moments (mean, m2), the backward sums,
/// the backward sums behind a ReLU.
struct ReductionRun {
    var mean, m2, sumGrad, sumGradShifted, sumGradReLU, sumGradShiftedReLU: [Double]

    /// The first output and feature where `self` and `other` differ in any
    /// bit, or nil; the ReLU sums only if `relu`.
    func firstDifference(from other: ReductionRun, relu: Bool = true) -> String? {
        var fields: [(String, [Double], [Double])] = [
            ("mean", mean, other.mean), ("m2", m2, other.m2), ("sumGrad", sumGrad, other.sumGrad),
            ("sumGradShifted", sumGradShifted, other.sumGradShifted)]
        if relu {
            fields += [("sumGradReLU", sumGradReLU, other.sumGradReLU),
                       ("sumGradShiftedReLU", sumGradShiftedReLU, other.sumGradShiftedReLU)]
        }
        for (name, a, b) in fields {
            guard a.count == b.count else { return "\(name): \(a.count) against \(b.count) values" }
            if let j = a.indices.first(where: { a[$0].bitPattern != b[$0].bitPattern }) {
                return "\(name)[\(j)]: \(a[j]) against \(b[j])"
            }
        }
        return nil
    }
}

func reductionRun(_ shape: BatchNormShape, x: [Float], dy: [Float], shift: [Float], scale: [Float], bias: [Float],
                  threads: Int, strips: Bool, residentBytes: Int? = 0) -> ReductionRun {
    let c = shape.c
    let settings = _KernelSettings(threadCount: threads, parallelThreshold: 1, streamingThreshold: .max / 4,
                                   cacheResidentBytes: residentBytes, reductionStrips: strips)
    var moments = FeatureMoments(featureCount: c)
    let nan = [Double](repeating: .nan, count: c)
    var r = ReductionRun(mean: [], m2: [], sumGrad: nan, sumGradShifted: nan, sumGradReLU: nan, sumGradShiftedReLU: nan)
    var scratch = [Float](repeating: 0, count: 2 * c)
    BatchNormKernel._withSettings(settings) {
        #expect(BatchNormKernel._takesStrips(c: c) == strips)
        x.withUnsafeBufferPointer { BatchNormKernel.moments($0.baseAddress!, shape: shape, into: &moments) }
        BatchNormKernel.backwardReduce(gradOutput: dy, input: x, shape: shape, shift: shift,
                                       sumGrad: &r.sumGrad, sumGradShifted: &r.sumGradShifted, scratch: &scratch)
        BatchNormKernel.backwardReduceReLU(gradOutput: dy, input: x, shape: shape, shift: shift, scale: scale, bias: bias,
                                           sumGrad: &r.sumGradReLU, sumGradShifted: &r.sumGradShiftedReLU, scratch: &scratch)
    }
    (r.mean, r.m2) = (moments.mean, moments.m2)
    return r
}

@Suite("Reductions in register strips: bit-identical to the row loop, and against the Double reference", .serialized)
struct ReductionStripTests {
    @Test("moments, backwardReduce, backwardReduceReLU with and without strips, 1 and 2 threads", arguments: stripShapes)
    func stripsMatchRows(shape: BatchNormShape) {
        var rng = TestRandom(83 + UInt64(shape.elementCount))
        let x = rng.batch(n: shape.n, c: shape.c), dy = rng.normals(shape.elementCount)
        let shift = (0..<shape.c).map { _ in Float(rng.normal()) }
        // the ReLU's pre-activation (x − shift)·scale + bias: about half ≤ 0
        let scale = (0..<shape.c).map { _ in Float(0.5 + rng.unit()) }, bias = (0..<shape.c).map { _ in Float(rng.normal()) }
        for threads in [1, 2] {
            let rows = reductionRun(shape, x: x, dy: dy, shift: shift, scale: scale, bias: bias, threads: threads, strips: false)
            let strips = reductionRun(shape, x: x, dy: dy, shift: shift, scale: scale, bias: bias, threads: threads, strips: true)
            let difference = strips.firstDifference(from: rows, relu: false)
            #expect(difference == nil, "\(threads) thread(s), strips against rows: \(difference ?? "")")
            expectReference(rows, shape: shape, x: x, dy: dy, shift: shift, scale: scale, bias: bias)
        }
        for residentBytes in [0, nil] as [Int?] {
            let got = reductionRun(shape, x: x, dy: dy, shift: shift, scale: scale, bias: bias, threads: 1, strips: true,
                                   residentBytes: residentBytes)
            expectReference(got, shape: shape, x: x, dy: dy, shift: shift, scale: scale, bias: bias)
        }
    }

    /// `got` against the Double twins, to BatchNormKernelTests' tolerances.
    func expectReference(_ got: ReductionRun, shape: BatchNormShape, x: [Float], dy: [Float], shift: [Float],
                         scale: [Float], bias: [Float]) {
        let ref = BatchNormReference.moments(x, n: shape.n, c: shape.c, l: 1)
        let mean = closeEnough(got.mean, ref.mean, rtol: 1e-5, atol: 1e-6)
        #expect(mean.ok, "mean \(mean.worst)")
        let variance = closeEnough(got.m2.map { $0 / Double(shape.n) }, ref.biasedVariance, rtol: 1e-5, atol: 1e-6)
        #expect(variance.ok, "variance \(variance.worst)")
        let d = shift.map(Double.init), atol = 1e-6 * Double(shape.n).squareRoot()
        let sums = BatchNormReference.backwardReduce(gradOutput: dy, input: x, n: shape.n, c: shape.c, l: 1, shift: d)
        #expect(closeEnough(got.sumGrad, sums.sumGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(got.sumGradShifted, sums.sumGradShifted, rtol: 1e-5, atol: atol).ok)
        let relu = BatchNormReference.backwardReduceReLU(gradOutput: dy, input: x, n: shape.n, c: shape.c, l: 1, shift: d,
                                                         scale: scale.map(Double.init), bias: bias.map(Double.init))
        #expect(closeEnough(got.sumGradReLU, relu.sumGrad, rtol: 1e-5, atol: atol).ok)
        #expect(closeEnough(got.sumGradShiftedReLU, relu.sumGradShifted, rtol: 1e-5, atol: atol).ok)
    }
}
