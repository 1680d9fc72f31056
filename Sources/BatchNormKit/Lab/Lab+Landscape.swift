import Foundation

// Experiments 8–10: the smoother landscape (Santurkar et al., 2018), internal
// covariate shift, and BatchNorm as a regularizer.

/// Santurkar et al.'s measurements at one point θ of training, on a fixed batch:
/// along the gradient direction, θ − η·g for the step sizes η.
struct LandscapeProbe {
    /// max − min of L(θ − η·g) over η ∈ {0} ∪ steps.
    let lossRange: Double
    /// max over η of ‖∇L(θ − η·g) − ∇L(θ)‖ ("gradient predictiveness": smaller is more predictive).
    let gradientChange: Double
    /// max over η of ‖∇L(θ − η·g) − ∇L(θ)‖ / ‖η·g‖ ("effective β-smoothness").
    let betaSmoothness: Double
    /// The top Hessian eigenvalue (Lanczos).
    let lambdaMax: Double
}

extension Lab {
    static let landscapeSteps: [Double] = [0.05, 0.1, 0.2, 0.4]

    func probeLandscape(_ network: Layer, inputs: Tensor, labels: [Int32]) throws -> LandscapeProbe {
        network.train()
        let probe = try _GradientProbe(network: network, inputs: inputs, labels: labels)
        defer { probe.restore() }
        let zero = [Double](repeating: 0, count: probe.parameterCount)
        let g0 = try probe.gradient(at: 0, along: zero)
        let loss0 = probe.lastLoss
        let norm = HessianSpectrum._norm(g0)
        var losses = [loss0], change = 0.0, beta = 0.0
        if norm > 0 {
            let direction = g0.map { -$0 / norm }
            for eta in Self.landscapeSteps {
                let g = try probe.gradient(at: eta * norm, along: direction)
                losses.append(probe.lastLoss)
                let d = HessianSpectrum._norm(zip(g, g0).map { $0 - $1 })
                change = max(change, d)
                beta = max(beta, d / (eta * norm))
            }
        }
        probe.restore()
        let lambda = try HessianSpectrum.topEigenvalues(of: network, inputs: inputs, labels: labels, count: 1,
                                                        steps: max(settings.lanczosSteps, 1), seed: 0).first ?? .nan
        let finite = losses.allSatisfy(\.isFinite)
        return LandscapeProbe(lossRange: finite ? losses.max()! - losses.min()! : .nan, gradientChange: change,
                              betaSmoothness: beta, lambdaMax: lambda)
    }

    /// The first `n` training samples as one batch.
    func fixedBatch(_ n: Int) throws -> (Tensor, [Int32]) {
        let m = min(n, train.count), f = train.featureCount
        return (try Tensor(shape: [m, f], scalars: Array(train.features[..<(m * f)])), Array(train.labels[..<m]))
    }

    // MARK: 8. Smoother landscape

    func landscape() throws -> ExperimentReport {
        let s = settings
        let (batch, labels) = try fixedBatch(s.landscapeSamples)
        var rows: [[String]] = []
        var range: [NormKind: [Double]] = [:], change: [NormKind: [Double]] = [:], beta: [NormKind: [Double]] = [:], lambda: [NormKind: [Double]] = [:]
        var lambdaByEpoch: [NormKind: [Int: [Double]]] = [:]
        for norm in [NormKind.batchnorm, .none] {
            for seed in 0..<UInt64(s.seeds) {
                let network = try FeedForwardNetwork(spec: seedSpec(norm: norm), seed: seed)
                let trainer = try Trainer(model: network, configuration: recipe(epochs: s.epochs, seed: seed))
                var perRun: [LandscapeProbe] = []
                for epoch in 0...s.epochs {
                    var loss = Double.nan
                    if epoch > 0 {
                        loss = try trainEpochUnlessDiverged(trainer, on: train)?.loss ?? .nan
                        guard loss.isFinite else { rows.append([norm.rawValue, "\(seed)", "\(epoch)", "nan", "", "", "", "", "diverged at epoch \(epoch)"]); break }
                    }
                    let p = try probeLandscape(network, inputs: batch, labels: labels)
                    rows.append([norm.rawValue, "\(seed)", "\(epoch)", cell(loss), cell(p.lossRange), cell(p.gradientChange),
                                 cell(p.betaSmoothness), cell(p.lambdaMax), ""])
                    lambdaByEpoch[norm, default: [:]][epoch, default: []].append(p.lambdaMax)
                    if epoch > 0 { perRun.append(p) }
                }
                range[norm, default: []].append(Spread(perRun.map(\.lossRange)).mean)
                change[norm, default: []].append(Spread(perRun.map(\.gradientChange)).mean)
                beta[norm, default: []].append(Spread(perRun.map(\.betaSmoothness)).mean)
                lambda[norm, default: []].append(Spread(perRun.map(\.lambdaMax)).mean)
            }
        }
        try writeCSV("08-landscape", header: ["norm", "seed", "epoch", "train_loss", "loss_range", "gradient_change", "beta_smoothness", "lambda_max", "diverged"], rows: rows)
        func verdict(_ name: String, _ values: [NormKind: [Double]], _ quantity: String, digits: Int = 3) -> (String, Verdict) {
            (name, Verdict(outcome: VerdictRule.compare(claimed: values[.batchnorm]!, baseline: values[.none]!, higherIsBetter: false),
                           figure: "\(quantity): BatchNorm \(Spread(values[.batchnorm]!).formatted(digits)) vs none \(Spread(values[.none]!).formatted(digits))",
                           rule: VerdictRule.compareRule("\(quantity) (per run averaged over epochs 1…\(s.epochs))", seeds: seedText(s.seeds))))
        }
        // how often a single seed's curve would have said "smaller at every epoch"
        let epochsWithLarger = (1...s.epochs).map { e -> Int in
            let b = lambdaByEpoch[.batchnorm]?[e] ?? [], n = lambdaByEpoch[.none]?[e] ?? []
            return zip(b, n).filter { $0 > $1 }.count
        }
        return ExperimentReport(
            number: 8, slug: "08-landscape", title: Self.titles[7],
            claim: "BatchNorm makes the loss change at a smaller rate, hence gradient is also more \"stable\" (so called Lipschitzness of function) … BatchNorm simplifies this landscape implicitly as the second order derivatives will be closer to zero",
            question: "Along the gradient direction at steps η ∈ {\(Self.landscapeSteps.map { "\($0)" }.joined(separator: ", "))} (Santurkar et al., 2018), does the loss vary less, the gradient change less (β-smoothness), and is the top Hessian eigenvalue smaller with BatchNorm?",
            verdicts: [
                verdict("loss varies less along the gradient", range, "loss range"),
                verdict("more predictive gradient", change, "max ‖Δ∇L‖"),
                verdict("smaller effective β-smoothness", beta, "β = max ‖Δ∇L‖/‖ηg‖"),
                verdict("smaller top Hessian eigenvalue", lambda, "λ_max", digits: 2),
            ],
            settings: "\(seedSpec()) vs without BatchNorm; \(dataText); \(s.epochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; measured in training mode after every epoch on the first \(batch.shape[0]) training samples; λ_max by \(s.lanczosSteps) Lanczos steps; \(seedText(s.seeds))",
            notes: ["runs (of \(s.seeds)) in which BatchNorm's λ_max exceeded the plain network's, per epoch 1…\(s.epochs): " + epochsWithLarger.map(String.init).joined(separator: ", ")])
    }

    // MARK: 9. Internal covariate shift

    func covariateShift() throws -> ExperimentReport {
        let s = settings
        let epochs = max(1, s.epochs / 2)
        let probeEvery = max(1, s.trainSamples / 128 / 10)
        var rows: [[String]] = []
        var inputDrift: [NormKind: [Double]] = [:], preDrift: [NormKind: [Double]] = [:], shift: [NormKind: [Double]] = [:]
        var shiftRows: [[String]] = []
        let (batch, labels) = try fixedBatch(s.landscapeSamples)
        for norm in [NormKind.batchnorm, .none] {
            for seed in 0..<UInt64(s.seeds) {
                var inputs: [ValueStatistics] = [], pres: [ValueStatistics] = [], changes: [Double] = []
                let last = settings.hiddenSizes.count - 1
                _ = try trainRun(seedSpec(norm: norm), seed: seed, configuration: recipe(epochs: epochs, seed: seed),
                                 evaluateEveryEpoch: false, probes: true) { step, net in
                    guard step == 1 || step % probeEvery == 0 else { return }
                    for block in net.blocks.indices {
                        if block > 0, let x = net.layerInput(block: block) {
                            let v = ValueStatistics(of: x)
                            rows.append([norm.rawValue, "\(seed)", "\(step)", "\(block + 1)", "layer_input", cell(v.mean), cell(v.variance.squareRoot())])
                            if block == last { inputs.append(v) }
                        }
                        if let x = net.preActivation(block: block) {
                            let v = ValueStatistics(of: x)
                            rows.append([norm.rawValue, "\(seed)", "\(step)", "\(block + 1)", "pre_activation", cell(v.mean), cell(v.variance.squareRoot())])
                            if block == last { pres.append(v) }
                        }
                    }
                    for m in try self.santurkarShift(net, inputs: batch, labels: labels, learningRate: 0.1) {
                        shiftRows.append([norm.rawValue, "\(seed)", "\(step)", "\(m.layer)", cell(m.relativeChange), cell(m.cosine)])
                        if m.layer == last + 1 { changes.append(m.relativeChange) }   // the last hidden Linear
                    }
                }
                shift[norm, default: []].append(Spread(changes).mean)
                inputDrift[norm, default: []].append(Self.drift(inputs))
                preDrift[norm, default: []].append(Self.drift(pres))
            }
        }
        try writeCSV("09-covariate-shift", header: ["norm", "seed", "step", "layer", "quantity", "mean", "std"], rows: rows)
        try writeCSV("09-santurkar-ics", header: ["norm", "seed", "step", "layer", "relative_gradient_change", "cosine"], rows: shiftRows)
        let layer = settings.hiddenSizes.count
        return ExperimentReport(
            number: 9, slug: "09-covariate-shift", title: Self.titles[8],
            claim: "In original paper authors claimed BatchNorm improves neural network properties by removing a, so called, Internal Covariate Shift … Some experiments show that the ICS is not reduced at all (unlikely), while others point to reduction in it (much more likely)",
            question: "Over training, do the mean and spread of what hidden layer \(layer) receives (its input, and its pre-activation) drift less with BatchNorm?",
            verdicts: [
                ("layer input drifts less", Verdict(outcome: VerdictRule.compare(claimed: inputDrift[.batchnorm]!, baseline: inputDrift[.none]!, higherIsBetter: false),
                    figure: "drift of Linear \(layer)'s input: BatchNorm \(Spread(inputDrift[.batchnorm]!).formatted(3)) vs none \(Spread(inputDrift[.none]!).formatted(3))",
                    rule: "drift = mean over consecutive probes of (|Δmean| + |Δstd|) / std of all values the layer received in the probed training step; " + VerdictRule.compareRule("drift", seeds: seedText(s.seeds)))),
                ("pre-activation drifts less", Verdict(outcome: VerdictRule.compare(claimed: preDrift[.batchnorm]!, baseline: preDrift[.none]!, higherIsBetter: false),
                    figure: "drift of block \(layer)'s pre-activation: BatchNorm \(Spread(preDrift[.batchnorm]!).formatted(3)) vs none \(Spread(preDrift[.none]!).formatted(3))",
                    rule: "the same drift of the activation's input (with BatchNorm before ReLU that is BatchNorm's output, normalized by construction)")),
                ("smaller ICS (Santurkar et al.)", Verdict(outcome: VerdictRule.compare(claimed: shift[.batchnorm]!, baseline: shift[.none]!, higherIsBetter: false),
                    figure: "‖G′ − G‖/‖G‖ of Linear \(layer): BatchNorm \(Spread(shift[.batchnorm]!).formatted(3)) vs none \(Spread(shift[.none]!).formatted(3))",
                    rule: "G = ∂L/∂W of the layer on the first \(batch.shape[0]) training samples, G′ the same after every earlier parameter took a plain SGD step (lr 0.1) first, averaged over the probes; " + VerdictRule.compareRule("‖G′ − G‖/‖G‖", seeds: seedText(s.seeds)))),
            ],
            settings: "\(seedSpec()) vs without BatchNorm; \(dataText); \(epochs) epoch(s), batch 128, SGD lr 0.1 momentum 0.9; statistics of the training batch at step 1 and every \(probeEvery) steps; \(seedText(s.seeds))",
            notes: [])
    }

    /// Mean over consecutive probes of (|Δmean| + |Δstd|) / previous std.
    static func drift(_ stats: [ValueStatistics]) -> Double {
        guard stats.count >= 2 else { return .nan }
        let terms = zip(stats, stats.dropFirst()).map { a, b in
            (abs(b.mean - a.mean) + abs(b.variance.squareRoot() - a.variance.squareRoot())) / max(a.variance.squareRoot(), 1e-12)
        }
        return terms.reduce(0, +) / Double(terms.count)
    }

    // MARK: 10. Regularization

    func regularization() throws -> ExperimentReport {
        let s = settings
        let data = try train.prefix(s.regularizationSamples)
        let epochs = 2 * s.longEpochs
        var rows: [[String]] = [], noiseRows: [[String]] = []
        var gaps: [NormKind: [Double]] = [:], finals: [NormKind: [Double]] = [:]
        var meanNoise: [Int: [Double]] = [:]
        let batchSizes = [2, 4, 8, 16, 32, 64, 128]
        for norm in [NormKind.batchnorm, .none] {
            for seed in 0..<UInt64(s.seeds) {
                let network = try FeedForwardNetwork(spec: seedSpec(norm: norm), seed: seed)
                var configuration = recipe(epochs: epochs, seed: seed)
                configuration.batchSize = min(configuration.batchSize, data.count)
                let trainer = try Trainer(model: network, configuration: configuration)
                var gap = Double.nan, final = Double.nan
                for epoch in 1...epochs {
                    let loss = try trainEpochUnlessDiverged(trainer, on: data)?.loss ?? .nan
                    guard loss.isFinite else { rows.append([norm.rawValue, "\(seed)", "\(epoch)", "nan", "nan", "nan", "diverged at epoch \(epoch)"]); break }
                    guard epoch % 2 == 0 || epoch == epochs else { continue }
                    let trainAccuracy = try network.evaluate(on: data).accuracy, testAccuracy = try trainer.evaluate(on: test).accuracy
                    rows.append([norm.rawValue, "\(seed)", "\(epoch)", cell(trainAccuracy), cell(testAccuracy), cell(trainAccuracy - testAccuracy), ""])
                    gap = trainAccuracy - testAccuracy
                    final = testAccuracy
                }
                gaps[norm, default: []].append(gap)
                finals[norm, default: []].append(final)
                if norm == .batchnorm {
                    for (b, mean, std) in try batchStatisticNoise(network, data: data, batchSizes: batchSizes, seed: seed) {
                        noiseRows.append(["\(seed)", "\(b)", cell(mean), cell(std), cell(1 / Double(b).squareRoot())])
                        meanNoise[b, default: []].append(mean)
                    }
                }
            }
        }
        try writeCSV("10-regularization", header: ["norm", "seed", "epoch", "train_accuracy", "test_accuracy", "gap", "diverged"], rows: rows)
        try writeCSV("10-batch-noise", header: ["seed", "batch_size", "mean_noise", "std_noise", "one_over_sqrt_b"], rows: noiseRows)
        let (slopeOutcome, slope) = VerdictRule.slope(x: batchSizes.map(Double.init), y: batchSizes.map { Spread(meanNoise[$0] ?? []).mean },
                                                      expected: -0.5, tolerance: 0.1)
        return ExperimentReport(
            number: 10, slug: "10-regularization", title: Self.titles[9],
            claim: "It introduces randomness (noise) into the data, as statistics are calculated as we go on batch basis … Noise robustness, works a little like Dropout (but is less severe)",
            question: "Trained to overfit \(data.count) samples, is the train–test accuracy gap smaller with BatchNorm, and how does the noise of the batch mean shrink with the batch size?",
            verdicts: [
                ("smaller train–test gap", Verdict(outcome: VerdictRule.compare(claimed: gaps[.batchnorm]!, baseline: gaps[.none]!, higherIsBetter: false),
                    figure: "train − test accuracy after \(epochs) epochs: BatchNorm \(Spread(gaps[.batchnorm]!).formatted(2, scale: 100)) pp vs none \(Spread(gaps[.none]!).formatted(2, scale: 100)) pp (test \(Spread(finals[.batchnorm]!).formatted(2, scale: 100))% vs \(Spread(finals[.none]!).formatted(2, scale: 100))%)",
                    rule: VerdictRule.compareRule("train (eval mode) − test accuracy at the last epoch", seeds: seedText(s.seeds)))),
                ("batch-mean noise ∝ 1/√B", Verdict(outcome: slopeOutcome,
                    figure: "log-log slope of the batch-mean noise over B = \(batchSizes.first!)…\(batchSizes.last!): \(_fixed(slope, 3))",
                    rule: "noise = RMS over 200 random batches and every feature of (batch mean − mean)/std of the first BatchNorm's input; holds when the least-squares log-log slope is within 0.1 of −0.5")),
            ],
            settings: "\(seedSpec()) vs without BatchNorm on the first \(data.count) training samples, \(epochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; \(test.count) test samples; batch noise from the trained BatchNorm networks; \(seedText(s.seeds))",
            notes: [])
    }

    /// For each B: RMS over 200 random batches (with replacement) and every
    /// feature of (μ_B − μ)/σ and of σ_B/σ − 1, for the input of the first
    /// BatchNorm (eval mode over `data`).
    func batchStatisticNoise(_ network: FeedForwardNetwork, data: LabeledSamples, batchSizes: [Int], seed: UInt64) throws -> [(Int, Double, Double)] {
        let m = data.count, f = data.featureCount
        let x = try Tensor(shape: [m, f], scalars: data.features)
        let wasTraining = network.isTraining
        network.eval(); network.probesEnabled = true
        defer { network.setTraining(wasTraining); network.probesEnabled = false }
        _ = try network.forward(x)
        guard let z = network.normInput(block: 0) else { return [] }
        let c = z.shape[1]
        let (means, variances) = ValueStatistics.columns(of: z)
        let values = z.scalars
        var generator = SplitMix64(seed: seed &+ 77)
        return batchSizes.map { b in
            var sumMean = 0.0, sumStd = 0.0, terms = 0
            for _ in 0..<200 {
                let rows = (0..<b).map { _ in Int(generator.next(upperBound: UInt64(m))) }
                for j in 0..<c where variances[j] > 1e-12 {
                    var s1 = 0.0, s2 = 0.0
                    for r in rows { let v = Double(values[r * c + j]); s1 += v; s2 += v * v }
                    let mu = s1 / Double(b), sd = max(0, s2 / Double(b) - mu * mu).squareRoot(), sigma = variances[j].squareRoot()
                    sumMean += ((mu - means[j]) / sigma) * ((mu - means[j]) / sigma)
                    sumStd += (sd / sigma - 1) * (sd / sigma - 1)
                    terms += 1
                }
            }
            return (b, (sumMean / Double(max(terms, 1))).squareRoot(), (sumStd / Double(max(terms, 1))).squareRoot())
        }
    }
}
