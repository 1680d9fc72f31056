// epoch: one training epoch of the seed recipe through `Trainer`
// (batch 128, SGD lr 0.1 momentum 0.9).

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import BatchNormKit
import BatchNormReference
import BatchNormTestSupport

// MARK: - One training epoch

/// The epoch case's data, built once per process (loading and standardizing
/// Fashion-MNIST takes about a second).
private var epochDataCache: LabeledSamples?
/// What the epoch case trains on, for the report and the JSON.
var epochDataDescription: String?

/// The Fashion-MNIST train split when Debian's dataset package is installed
/// (and the network takes 784 inputs), else synthetic data of the same shape:
/// uniform [0, 1) "pixels" and random labels. Standardized with its own mean
/// and std, as `make train` does by default.
func epochData(sizes: CaseSizes, smoke: Bool) throws -> LabeledSamples {
    if let d = epochDataCache { return d }
    var samples: LabeledSamples
    var what: String
    let directory = MNISTDataset.defaultDirectory
    if !smoke, sizes.input == 784, access(directory + "/train-labels-idx1-ubyte.gz", R_OK) == 0
        || access(directory + "/train-labels-idx1-ubyte", R_OK) == 0 {
        samples = LabeledSamples(try MNISTDataset(directory: directory).train)
        what = "Fashion-MNIST train split (\(directory)), \(samples.count) samples"
    } else {
        var rng = ReferenceRandom(seed: UInt64(sizes.epochSamples))
        let count = sizes.epochSamples
        let features = [Float](unsafeUninitializedCapacity: count * sizes.input) { p, initialized in
            for i in 0..<(count * sizes.input) { p[i] = Float(rng.unit()) }
            initialized = count * sizes.input
        }
        let labels = (0..<count).map { _ in Int32(rng.next() % UInt64(sizes.classes)) }
        samples = try LabeledSamples(features: features, labels: labels, featureCount: sizes.input)
        what = "synthetic \(count)×\(sizes.input) (uniform [0, 1) values, random labels)"
            + (smoke ? ", smoke size" : "; \(directory) not found")
    }
    samples = try InputStandardization(fittedTo: samples).apply(to: samples)
    what += ", standardized as `make train` does"
    epochDataCache = samples
    epochDataDescription = what
    print("  epoch data: \(what)")
    return samples
}

func epochCase(_ bench: Bench, sizes: CaseSizes) throws {
    let name = "epoch N=\(sizes.epochSamples)"
    guard bench.wants(name) else { return }
    let data = try epochData(sizes: sizes, smoke: bench.options.smoke)
    let configuration = TrainingConfiguration(batchSize: sizes.epochBatch)   // the seed recipe: lr 0.1, momentum 0.9
    let model = try SeedNetwork(inputSize: sizes.input, hiddenSizes: sizes.hidden, classes: sizes.classes, seed: 0)
    let trainer = try Trainer(model: model, configuration: configuration)
    var last: EpochTraining?
    // an epoch is ≈ 1 s: one untimed, then three timed (the trainer keeps
    // training, as epochs 2–4 of a run; the step's cost does not depend on the weights)
    let policy = RepeatPolicy(warmup: 1, warmupTime: 0, minReps: 3, minTime: 0, maxReps: 3, maxTime: 600)
    let batch = sizes.epochBatch
    let used = data.count % batch == 1 ? data.count - 1 : data.count   // Trainer drops a final batch of one
    try bench.run(name, group: "epoch", metric: .samples(used),
                  reference: nil,   // the naive step takes ~10 s per 256 samples: ~40 min per epoch
                  policy: policy,
                  fast: { last = try trainer.trainEpoch(on: data); blackHole(last!.loss) },
                  limit: {
                      // the epoch's steps as plain sgemm: full batches plus the final partial one
                      let linears = sizes.linearShapes
                      let full = seedGemmBound(bench.roofline, linears: linears, batch: batch, training: true)
                      var t = Double(used / batch) * full.boundTime
                      var flops = Double(used / batch) * full.details[0].1
                      if used % batch > 0 {
                          let tail = seedGemmBound(bench.roofline, linears: linears, batch: used % batch, training: true)
                          t += tail.boundTime; flops += tail.details[0].1
                      }
                      return Limit(kind: "\(bench.roofline.productName) (8/step)", boundTime: t,
                                   details: [("gemm_flops", flops), ("sgemm_GFLOPs", flops / t / 1e9)])
                  },
                  check: {
                      var parts: [(String, (ok: Bool, worst: String))] = []
                      if let last {
                          parts.append(("timed epoch", (last.samples == used && last.loss.isFinite,
                                                        "\(last.samples) samples, loss \(last.loss)")))
                      }
                      parts += try epochAgainstReference(sizes: sizes)
                      return Check.all(parts)
                  })
}

/// Two epochs of one whole batch each (so the shuffle cannot change the
/// result: BatchNorm's statistics, the mean loss and the gradients are
/// permutation-invariant) through `Trainer`, against ReferenceNetwork's
/// Double gradients with PyTorch's momentum rule: buf ← g (first step),
/// buf ← μ·buf + g, p ← p − lr·buf. The second epoch's backward runs after
/// `zeroGrad()`, so it checks that the gradients are overwritten, not added.
func epochAgainstReference(sizes: CaseSizes) throws -> [(String, (ok: Bool, worst: String))] {
    let n = 64
    let net = try SeedNetwork(inputSize: sizes.input, hiddenSizes: sizes.hidden, classes: sizes.classes, seed: 7)
    var rng = ReferenceRandom(seed: 6464)
    let xs = rng.normals(n * sizes.input)
    let labels = (0..<n).map { _ in Int32(rng.next() % UInt64(sizes.classes)) }
    let data = try LabeledSamples(features: xs, labels: labels, featureCount: sizes.input)
    var reference = ReferenceNetwork(net)
    let configuration = TrainingConfiguration(epochs: 2, batchSize: n)
    let trainer = try Trainer(model: net, configuration: configuration)
    let lr = Double(configuration.learningRate), mu = Double(configuration.momentum)
    let xd = xs.map(Double.init), ld = labels.map(Int.init)
    var buffers: [[Double]] = []
    var parts: [(String, (ok: Bool, worst: String))] = []
    for epoch in 1...2 {
        let got = try trainer.trainEpoch(on: data)
        let start = reference.parameters
        let want = reference.step(xd, labels: ld, n: n, learningRate: 0)   // gradients only
        buffers = buffers.isEmpty ? want.gradients
            : zip(buffers, want.gradients).map { b, g in zip(b, g).map { mu * $0 + $1 } }
        reference.parameters = zip(start, buffers).map { p, b in zip(p, b).map { $0 - lr * $1 } }
        parts.append(("epoch \(epoch) loss", compareToReference([got.loss], [want.loss], rtol: 1e-5, atol: 1e-5)))
    }
    for (k, p) in net.parameters().enumerated() {
        parts.append(("parameter \(k) after 2 epochs",
                      compareToReference(p.value.scalars, reference.parameters[k], rtol: 1e-4, atol: 1e-5)))
    }
    return parts
}
