// The seed network: training step, eval-mode inference (plain and folded)
// and heap allocations per step. The epoch case: EpochCases.swift.

import BatchNormKit
import BatchNormKernels
import BatchNormReference
import BatchNormTestSupport
import CBatchNormKitMallocCounter

// MARK: - Seed network: training step and inference

/// The seed network with its optimizer, loss and one fixed batch.
final class SeedSetup {
    let net: SeedNetwork
    let sgd: SGD
    let loss = CrossEntropyLoss()
    let x: Tensor
    let xs: [Float]
    let labels: [Int32]
    let n: Int
    let learningRate: Float = 0.01

    init(sizes: CaseSizes, batch n: Int) throws {
        self.n = n
        net = try SeedNetwork(inputSize: sizes.input, hiddenSizes: sizes.hidden, classes: sizes.classes, seed: 42)
        sgd = try SGD(parameters: net.parameters(), learningRate: learningRate)
        var rng = ReferenceRandom(seed: UInt64(n))
        xs = rng.normals(n * sizes.input)
        x = try Tensor(shape: [n, sizes.input], scalars: xs)
        labels = (0..<n).map { _ in Int32(rng.next() % UInt64(sizes.classes)) }
    }

    /// zero_grad, forward, cross-entropy, backward, SGD step.
    @inline(__always)
    func step() throws {
        sgd.zeroGrad()
        let logits = try net.forward(x)
        blackHole(try loss.forward(logits: logits, labels: labels))
        _ = try net.backward(try loss.backward(), needsInputGradient: false)
        sgd.step()
    }

    /// For the inference cases: a few training steps, so the running
    /// statistics are not the initial 0 / 1, then eval mode; returns the input
    /// in Double and the first `refN` rows of it (the naive reference's share).
    func preparedForInference(inputSize: Int) throws -> (xd: [Double], refN: Int, xdr: [Double]) {
        for _ in 0..<3 { try step() }
        net.eval()
        let xd = xs.map(Double.init), refN = min(n, 32)
        return (xd, refN, Array(xd[..<(refN * inputSize)]))
    }

    /// The flops of the step's matrix products and their plain-sgemm time.
    func gemmBound(_ roofline: Roofline, training: Bool) -> Limit {
        seedGemmBound(roofline, linears: net.layers.layers.compactMap { $0 as? Linear }.map { ($0.inFeatures, $0.outFeatures) },
                      batch: n, training: training)
    }
}

/// The matrix products of one seed-network step (`training`: 3 forward, 3 dW,
/// 2 dX) or inference (3 forward) at batch `n`, as plain products on the
/// backend in force (sgemm, or MatrixKernel's tiles): their time and flops.
/// dW runs with β = 0: `zeroGrad()` marks the gradients zero and the next
/// backward writes them instead of accumulating, as the step does.
func seedGemmBound(_ roofline: Roofline, linears: [(Int, Int)], batch n: Int, training: Bool) -> Limit {
    var t = 0.0
    var flops = 0.0
    for (index, (i, o)) in linears.enumerated() {
        t += roofline.sgemmTime(transA: false, transB: true, m: n, n: o, k: i, beta: 1); flops += Double(2 * n * i * o)
        guard training else { continue }
        t += roofline.sgemmTime(transA: true, transB: false, m: o, n: i, k: n, beta: 0); flops += Double(2 * n * i * o)
        if index > 0 {   // the first layer's input needs no gradient
            t += roofline.sgemmTime(transA: false, transB: false, m: n, n: i, k: o, beta: 0); flops += Double(2 * n * i * o)
        }
    }
    let name = roofline.productName
    return Limit(kind: training ? "\(name) (8 GEMMs)" : "\(name) (3 GEMMs)", boundTime: t,
                 details: [("gemm_flops", flops), ("sgemm_GFLOPs", flops / t / 1e9)])
}

func stepCase(_ bench: Bench, sizes: CaseSizes, batch n: Int) throws {
    let name = "step N=\(n)"
    guard bench.wants(name) else { return }
    let s = try SeedSetup(sizes: sizes, batch: n)
    var reference = ReferenceNetwork(s.net)
    let xd = s.xs.map(Double.init), labels = s.labels.map(Int.init)
    let lr = Double(s.learningRate)
    // the naive step takes 4 s at N = 64: run it on the first 16 samples (scaled up, see Bench.run)
    let refN = min(n, 16)
    let xdr = Array(xd[..<(refN * sizes.input)]), labelsr = Array(labels[..<refN])
    try bench.run(name, group: "step", metric: .samples(n),
                  reference: { var r = reference; blackHole(r.step(xdr, labels: labelsr, n: refN, learningRate: lr).loss) },
                  referenceRows: (refN, n),
                  fast: { try s.step() },
                  limit: { s.gemmBound(bench.roofline, training: true) },
                  check: {
                      // from identical weights: the loss, every gradient, and the updated weights
                      let fresh = try SeedSetup(sizes: sizes, batch: n)
                      reference = ReferenceNetwork(fresh.net)
                      let want = reference.step(xd, labels: labels, n: n, learningRate: lr)
                      fresh.sgd.zeroGrad()
                      let loss = try fresh.loss.forward(logits: try fresh.net.forward(fresh.x), labels: fresh.labels)
                      _ = try fresh.net.backward(try fresh.loss.backward(), needsInputGradient: false)
                      let params = fresh.net.parameters()
                      var parts: [(String, (ok: Bool, worst: String))] = [
                          ("loss", compareToReference([loss], [want.loss], rtol: 1e-5, atol: 1e-5)),
                      ]
                      for (k, p) in params.enumerated() {
                          parts.append(("grad[\(k)]", compareToReference(p.grad.scalars, want.gradients[k], rtol: 1e-3, atol: 1e-5)))
                      }
                      fresh.sgd.step()
                      let updated = ReferenceNetwork(fresh.net)
                      for (k, (a, b)) in zip(updated.ops, reference.ops).enumerated() {
                          switch (a, b) {
                          case let (.linear(_, _, w1, b1), .linear(_, _, w2, b2)),
                               let (.batchNorm(_, w1, b1, _, _, _), .batchNorm(_, w2, b2, _, _, _)):
                              parts.append(("layer \(k) weight", compareToReference(w1, w2, rtol: 1e-5, atol: 1e-6)))
                              parts.append(("layer \(k) bias", compareToReference(b1, b2, rtol: 1e-5, atol: 1e-6)))
                          default: break
                          }
                      }
                      return Check.all(parts)
                  })
}

func inferenceCase(_ bench: Bench, sizes: CaseSizes, batch n: Int) throws {
    let name = "inference N=\(n)"
    guard bench.wants(name) else { return }
    let s = try SeedSetup(sizes: sizes, batch: n)
    let (xd, refN, xdr) = try s.preparedForInference(inputSize: sizes.input)
    let reference = ReferenceNetwork(s.net)
    try bench.run(name, group: "inference", metric: .samples(n),
                  reference: { blackHole(reference.inference(xdr, n: refN)) },
                  referenceRows: (refN, n),
                  fast: { blackHole(try s.net.forward(s.x)) },
                  limit: { s.gemmBound(bench.roofline, training: false) },
                  check: {
                      let y = try s.net.forward(s.x)
                      let want = reference.inference(xd, n: n)
                      return Check.all([("logits", compareToReference(y.scalars, want, rtol: 1e-4, atol: 1e-4))])
                  })
}

// MARK: - Folded inference

func foldedInferenceCase(_ bench: Bench, sizes: CaseSizes, batch n: Int) throws {
    let name = "inference-folded N=\(n)"
    guard bench.wants(name) else { return }
    let s = try SeedSetup(sizes: sizes, batch: n)
    // the same network as `inference N=…` (its running statistics get folded into the weights)
    let (xd, refN, xdr) = try s.preparedForInference(inputSize: sizes.input)
    let folded = try s.net.foldingBatchNorm()
    let reference = ReferenceNetwork(folded)   // Linear, ReLU, Linear, ReLU, Linear in Double
    try bench.run(name, group: "inference", metric: .samples(n),
                  reference: { blackHole(reference.inference(xdr, n: refN)) },
                  referenceRows: (refN, n),
                  fast: { blackHole(try folded.forward(s.x)) },
                  // the same three products as the unfolded network (folding removes only BatchNorm)
                  limit: { s.gemmBound(bench.roofline, training: false) },
                  check: {
                      // folded ≈ unfolded eval-mode logits (the fold is exact in real
                      // arithmetic; the weights are rounded once to Float), and both
                      // ≈ the unfolded network in Double
                      let y = try folded.forward(s.x).scalars
                      let unfolded = try s.net.forward(s.x).scalars
                      let want = ReferenceNetwork(s.net).inference(xd, n: n)
                      return Check.all([
                          ("folded vs unfolded", compareToReference(y, unfolded, rtol: 1e-5, atol: 1e-6)),
                          ("folded vs reference", compareToReference(y, want, rtol: 1e-4, atol: 1e-4)),
                      ])
                  })
}

// MARK: - Heap allocations per steady-state step

/// Allocation counts of one steady-state step, in total and per layer call.
struct AllocationReport {
    var perStep: Double
    /// The same step with AdamW (amsgrad) and a cosine schedule setting its lr.
    var perAdamStep: Double
    var perInference: Double
    var breakdown: [(String, Int)]
    /// (threads, allocations per threaded forward-train + backward of each layer named)
    var threaded: (threads: Int, counts: [(String, Double)])? = nil
}

func countAllocations(sizes: CaseSizes, batch n: Int, steps: Int = 20) throws -> AllocationReport {
    let s = try SeedSetup(sizes: sizes, batch: n)
    for _ in 0..<5 { try s.step() }   // warm: every buffer exists
    let before = bnk_malloc_count()
    for _ in 0..<steps { try s.step() }
    let perStep = Double(bnk_malloc_count() - before) / Double(steps)

    // AdamW keeps two (three with amsgrad) buffers per parameter, made on its
    // first step; after that a step must allocate nothing, schedule included.
    let adam = try AdamW(parameters: s.net.parameters(), learningRate: 1e-3, weightDecay: 0.01, amsgrad: true)
    let schedule = try CosineAnnealingLR(baseLearningRate: 1e-3, tMax: 100)
    func adamStep(_ t: Int) throws {
        adam.learningRate = Float(schedule.learningRate(at: t))
        adam.zeroGrad()
        let logits = try s.net.forward(s.x)
        blackHole(try s.loss.forward(logits: logits, labels: s.labels))
        _ = try s.net.backward(try s.loss.backward(), needsInputGradient: false)
        adam.step()
    }
    for t in 0..<3 { try adamStep(t) }
    let beforeAdam = bnk_malloc_count()
    for t in 3..<(3 + steps) { try adamStep(t) }
    let perAdamStep = Double(bnk_malloc_count() - beforeAdam) / Double(steps)

    // the same step, one call at a time, to name the allocating layer
    var breakdown: [(String, Int)] = []
    func counted<R>(_ label: String, _ body: () throws -> R) rethrows -> R {
        let b = bnk_malloc_count()
        let r = try body()
        breakdown.append((label, Int(bnk_malloc_count() - b)))
        return r
    }
    // The Sequential runs BatchNorm → ReLU fused, so the ReLU layers alone
    // have never run: one uncounted pass gives them their buffers first.
    let layers = s.net.layers.layers
    for pass in 0..<2 {
        breakdown.removeAll(keepingCapacity: true)
        counted("SGD.zeroGrad") { s.sgd.zeroGrad() }
        var a = s.x
        for (i, l) in layers.enumerated() { a = try counted("layers.\(i) \(type(of: l)).forward") { try l.forward(a) } }
        let logits = a
        _ = try counted("CrossEntropyLoss.forward") { try s.loss.forward(logits: logits, labels: s.labels) }
        var g = try counted("CrossEntropyLoss.backward") { try s.loss.backward() }
        for i in layers.indices.reversed() {
            let l = layers[i]
            let next = try counted("layers.\(i) \(type(of: l)).backward") { try l.backward(g, needsInputGradient: i > 0) }
            if let next { g = next }
        }
        if pass == 1 { counted("SGD.step") { s.sgd.step() } }
    }
    // and through the containers the step uses
    counted("SGD.zeroGrad") { s.sgd.zeroGrad() }
    let logits2 = try counted("SeedNetwork.forward (Sequential)") { try s.net.forward(s.x) }
    _ = try s.loss.forward(logits: logits2, labels: s.labels)
    _ = try counted("SeedNetwork.backward (Sequential)") { try s.net.backward(try s.loss.backward(), needsInputGradient: false) }

    s.net.eval()
    for _ in 0..<3 { blackHole(try s.net.forward(s.x)) }
    let b2 = bnk_malloc_count()
    for _ in 0..<steps { blackHole(try s.net.forward(s.x)) }
    let perInference = Double(bnk_malloc_count() - b2) / Double(steps)
    return AllocationReport(perStep: perStep, perAdamStep: perAdamStep, perInference: perInference, breakdown: breakdown)
}

/// Heap allocations of one forward-train + backward of BatchNorm1d, of
/// BatchNorm1d → ReLU fused and of GroupNorm, each on a batch big enough for
/// the kernels to split it across `threads` threads.
func countThreadedAllocations(threads: Int, smoke: Bool) throws -> [(String, Double)] {
    let saved = BatchNormKernel.threadCount, savedThreshold = BatchNormKernel.parallelThreshold
    defer { BatchNormKernel.threadCount = saved; BatchNormKernel.parallelThreshold = savedThreshold }
    BatchNormKernel.threadCount = threads
    let shape = smoke ? BatchNormShape(n: 64, c: 40) : BatchNormShape(n: 2048, c: 256)
    if smoke { BatchNormKernel.parallelThreshold = shape.elementCount }
    var rng = ReferenceRandom(seed: 3)
    let x = try Tensor(shape: [shape.n, shape.c], scalars: rng.batch(n: shape.n, c: shape.c))
    let dy = try Tensor(shape: [shape.n, shape.c], scalars: rng.normals(shape.elementCount))
    func count(_ forward: () throws -> Tensor, _ backward: () throws -> Tensor?) rethrows -> Double {
        for _ in 0..<5 { _ = try forward(); _ = try backward() }
        let before = bnk_malloc_count()
        let calls = 20
        for _ in 0..<calls { blackHole(try forward()); blackHole(try backward()) }
        return Double(bnk_malloc_count() - before) / Double(calls)
    }
    let bn = try BatchNorm1d(numFeatures: shape.c), fused = try BatchNorm1d(numFeatures: shape.c)
    let gn = try GroupNorm(numGroups: 8, numChannels: shape.c)
    return [
        ("BatchNorm1d forward-train + backward", try count({ try bn.forward(x) }, { try bn.backward(dy, needsInputGradient: true) })),
        ("BatchNorm1d → ReLU fused, the same", try count({ try fused.forwardReLU(x) }, { try fused.backwardReLU(dy, needsInputGradient: true) })),
        ("GroupNorm(8) forward + backward", try count({ try gn.forward(x) }, { try gn.backward(dy, needsInputGradient: true) })),
    ]
}
