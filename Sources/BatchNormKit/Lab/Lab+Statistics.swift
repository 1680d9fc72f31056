import Foundation

// Experiments 4 and 5: vanishing gradients / saturation in a deep sigmoid
// network, and the unreliable statistics of small batches.

extension Lab {
    // MARK: 4. Vanishing gradients and saturation

    /// The init scale of experiment 4's second arm: large enough that the plain
    /// sigmoid network starts saturated (first-layer pre-activations with std ≈ 6).
    static let saturatingInitScale: Float = 10

    func vanishingGradients() throws -> ExperimentReport {
        let s = settings
        let probeEvery = max(1, s.trainSamples / 128 / 8)
        let wide = Self.saturatingInitScale
        var rows: [[String]] = []
        var ratio: [NormKind: [Double]] = [:], saturation: [NormKind: [Float: [Double]]] = [:], finals: [NormKind: [Float: [Double]]] = [:]
        for norm in [NormKind.batchnorm, .none] {
            for scale in [1, wide] {
                var spec = NetworkSpec(inputSize: train.featureCount, depth: s.deepDepth, width: s.deepWidth, classes: classCount,
                                       norm: norm, activation: .sigmoid)
                spec.initScale = scale
                for seed in 0..<UInt64(s.seeds) {
                    var saturated: [Double] = []
                    let run = try trainRun(spec, seed: seed, configuration: recipe(epochs: s.epochs, seed: seed),
                                           evaluateEveryEpoch: false, probes: true) { step, net in
                        guard step == 1 || step % probeEvery == 0 else { return }
                        let norms = net.weightGradientNorms()
                        for (layer, g) in norms.enumerated() {
                            var fraction = Double.nan
                            if layer < net.blocks.count, let y = net.activationOutput(block: layer) {
                                let count = y.withUnsafeBufferPointer { $0.reduce(0) { $0 + (Sigmoid.isSaturated(output: $1) ? 1 : 0) } }
                                fraction = Double(count) / Double(max(y.count, 1))
                                saturated.append(fraction)
                            }
                            rows.append([norm.rawValue, "\(scale)", "\(seed)", "\(step)", "\(layer + 1)", cell(g), cell(fraction)])
                        }
                        // at initialization (the first step's gradients): first over last hidden Linear
                        if step == 1 && scale == 1 {
                            ratio[norm, default: []].append(log10(max(norms[0], 1e-30) / max(norms[net.blocks.count - 1], 1e-30)))
                        }
                    }
                    saturation[norm, default: [:]][scale, default: []].append(Spread(saturated).mean)
                    finals[norm, default: [:]][scale, default: []].append(run.finalAccuracy)
                }
            }
        }
        try writeCSV("04-vanishing-gradients", header: ["norm", "init_scale", "seed", "step", "layer", "weight_grad_norm", "saturated_fraction"], rows: rows)
        let bnR = ratio[.batchnorm]!, noneR = ratio[.none]!
        func ratioText(_ v: [Double]) -> String { "10^\(Spread(v).formatted(2))" }
        func pct(_ v: [Double], _ digits: Int = 2) -> String { Spread(v).formatted(digits, scale: 100) + "%" }
        let satBN = saturation[.batchnorm]![wide]!, satNone = saturation[.none]![wide]!
        return ExperimentReport(
            number: 4, slug: "04-vanishing-gradients", title: Self.titles[3],
            claim: "Try BatchNorm in previous notebook (dying/vanishing gradients). What did you observe? — and: Some activations oversaturate (e.g. sigmoid). If we normalize the data, those usually move away from oversaturation regime",
            question: "In a \(s.deepDepth)-hidden-layer sigmoid network, do the first layers get much smaller gradients than the last (vanishing), does BatchNorm before each sigmoid change that, and — with weights ×\(_fixed(Double(wide), 0)) so that sigmoids start saturated — does BatchNorm keep fewer units saturated?",
            verdicts: [
                ("less vanishing at init", Verdict(outcome: VerdictRule.compare(claimed: bnR, baseline: noneR, higherIsBetter: true),
                    figure: "‖∂L/∂W₁‖ / ‖∂L/∂W\(s.deepDepth)‖ at init: BatchNorm \(ratioText(bnR)) vs none \(ratioText(noneR))",
                    rule: VerdictRule.compareRule("log₁₀ of the first-to-last hidden-layer weight-gradient norm ratio at the first step (default init)", seeds: seedText(s.seeds)))),
                ("fewer saturated units (init ×\(_fixed(Double(wide), 0)))", Verdict(outcome: VerdictRule.compare(claimed: satBN, baseline: satNone, higherIsBetter: false),
                    figure: "saturated sigmoid units (σ′ < 5 % of its peak): BatchNorm \(pct(satBN, 1)) vs none \(pct(satNone, 1)); default init: \(pct(saturation[.batchnorm]![1]!, 1)) vs \(pct(saturation[.none]![1]!, 1))",
                    rule: VerdictRule.compareRule("fraction of saturated units over every probe and hidden layer, weights ×\(_fixed(Double(wide), 0))", seeds: seedText(s.seeds)))),
                ("higher final accuracy", Verdict(outcome: VerdictRule.compare(claimed: finals[.batchnorm]![1]!, baseline: finals[.none]![1]!, higherIsBetter: true),
                    figure: "test accuracy, default init: BatchNorm \(pct(finals[.batchnorm]![1]!)) vs none \(pct(finals[.none]![1]!)); init ×\(_fixed(Double(wide), 0)): \(pct(finals[.batchnorm]![wide]!)) vs \(pct(finals[.none]![wide]!))",
                    rule: VerdictRule.compareRule("final test accuracy (default init)", seeds: seedText(s.seeds)))),
            ],
            settings: "784 → \(s.deepDepth) × \(s.deepWidth) sigmoid → \(classCount), BatchNorm before each sigmoid vs none, default init and weights ×\(_fixed(Double(wide), 0)); \(dataText); \(s.epochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; gradients and saturation probed at step 1 and every \(probeEvery) steps; \(seedText(s.seeds))",
            notes: [])
    }

    // MARK: 5. Small batches

    func smallBatches() throws -> ExperimentReport {
        let s = settings
        let data = try train.prefix(s.smallBatchSamples)
        let epochs = max(1, s.epochs / 2)
        var rows: [[String]] = []
        var accuracy: [NormKind: [Int: [Double]]] = [:], gap: [NormKind: [Int: [Double]]] = [:]
        let norms = [NormKind.batchnorm, .layernorm, .groupnorm]
        for norm in norms {
            for b in s.batchSizes {
                let lr = 0.1 * Float(b) / 128
                for seed in 0..<UInt64(s.seeds) {
                    let run = try trainRun(seedSpec(norm: norm), seed: seed,
                                           configuration: recipe(epochs: epochs, learningRate: lr, batchSize: b, seed: seed),
                                           data: data, evaluateEveryEpoch: false)
                    let trainMode = run.divergedAt == nil ? try trainModeAccuracy(run.network, batchSize: b) : .nan
                    rows.append([norm.rawValue, "\(b)", "\(lr)", "\(seed)", cell(run.finalAccuracy), cell(trainMode),
                                 cell(trainMode - run.finalAccuracy), run.divergenceText])
                    accuracy[norm, default: [:]][b, default: []].append(run.finalAccuracy)
                    gap[norm, default: [:]][b, default: []].append(abs(trainMode - run.finalAccuracy))
                }
            }
        }
        try writeCSV("05-small-batches", header: ["norm", "batch_size", "learning_rate", "seed", "test_accuracy", "train_mode_accuracy", "train_eval_gap", "diverged"], rows: rows)
        let smallest = s.batchSizes.min()!, largest = s.batchSizes.max()!
        let bestOther = [NormKind.layernorm, .groupnorm].max { Spread(accuracy[$0]![smallest]!).mean < Spread(accuracy[$1]![smallest]!).mean }!
        let bnSmall = accuracy[.batchnorm]![smallest]!, otherSmall = accuracy[bestOther]![smallest]!
        let gapSmall = gap[.batchnorm]![smallest]!, gapLarge = gap[.batchnorm]![largest]!
        return ExperimentReport(
            number: 5, slug: "05-small-batches", title: Self.titles[4],
            claim: "Statistics are batch dependent - if the batch size is too small, those might be unreliable (see challenges for other normalization schemes to mitigate this problem)",
            question: "Training on the same \(data.count) samples with batches of \(s.batchSizes.map(String.init).joined(separator: ", ")), does BatchNorm fall behind LayerNorm and GroupNorm at the smallest batch, and do its train-mode (batch statistics) and eval-mode (running statistics) predictions drift apart?",
            verdicts: [
                ("LayerNorm/GroupNorm beat BatchNorm at batch \(smallest)", Verdict(
                    outcome: VerdictRule.compare(claimed: otherSmall, baseline: bnSmall, higherIsBetter: true),
                    figure: "batch \(smallest): \(bestOther.rawValue) \(Spread(otherSmall).formatted(2, scale: 100))% vs BatchNorm \(Spread(bnSmall).formatted(2, scale: 100))%",
                    rule: VerdictRule.compareRule("eval-mode test accuracy at the smallest batch, the better of LayerNorm and GroupNorm against BatchNorm", seeds: seedText(s.seeds)))),
                trainEvalGapVerdict("BatchNorm", small: gapSmall, large: gapLarge, smallest: smallest, largest: largest),
            ],
            settings: "\(seedSpec()) with BatchNorm1d, LayerNorm or GroupNorm (8 groups) before ReLU; \(data.count) training samples, \(epochs) epoch(s) at every batch size (same samples seen), lr 0.1 × B/128 (linear scaling), momentum 0.9; \(test.count) test samples; \(seedText(s.seeds))",
            notes: [])
    }

    /// "<name>'s train/eval gap grows at small batches": the two-sample rule on
    /// |train-mode − eval-mode test accuracy| at the smallest against the largest batch.
    func trainEvalGapVerdict(_ name: String, small: [Double], large: [Double], smallest: Int, largest: Int) -> (name: String, verdict: Verdict) {
        ("\(name)'s train/eval gap grows at small batches", Verdict(
            outcome: VerdictRule.compare(claimed: small, baseline: large, higherIsBetter: true),
            figure: "|train-mode − eval-mode test accuracy|: batch \(smallest) \(Spread(small).formatted(2, scale: 100)) pp vs batch \(largest) \(Spread(large).formatted(2, scale: 100)) pp",
            rule: VerdictRule.compareRule("|accuracy with batch statistics of test batches of B − accuracy with running statistics|", seeds: seedText(settings.seeds))))
    }

    /// Accuracy on `samples` (the lab's test samples by default) with the network
    /// in training mode, in consecutive batches of `batchSize` (batch statistics,
    /// as during training; a final batch of one is left out). Running buffers are
    /// restored afterwards.
    func trainModeAccuracy(_ network: Layer, batchSize: Int, on samples: LabeledSamples? = nil) throws -> Double {
        let test = samples ?? self.test
        let saved = network.namedStateEntries(prefix: "").compactMap { entry -> (Tensor, [Float])? in
            if case let .buffer(t) = entry.entry { return (t, t.scalars) } else { return nil }
        }
        let counters = network.namedStateEntries(prefix: "").compactMap { entry -> (BatchCounting, Int64)? in
            if case let .batchCounter(c) = entry.entry { return (c, c.numBatchesTracked) } else { return nil }
        }
        defer {
            for (t, values) in saved { t.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = values[i] } } }
            for (c, n) in counters { c.numBatchesTracked = n }
        }
        let wasTraining = network.isTraining
        network.train()
        defer { network.setTraining(wasTraining) }
        let f = test.featureCount
        var correct = 0, seen = 0, start = 0
        while start + 2 <= test.count {
            let n = min(batchSize, test.count - start)
            let x = try Tensor(shape: [n, f], scalars: Array(test.features[(start * f)..<((start + n) * f)]))
            let logits = try network.forward(x)
            let k = logits.shape[1]
            logits.withUnsafeBufferPointer { p in
                for row in 0..<n {
                    var best = 0
                    for j in 1..<k where p[row * k + j] > p[row * k + best] { best = j }
                    if best == Int(test.labels[start + row]) { correct += 1 }
                }
            }
            seen += n
            start += n
        }
        return Double(correct) / Double(max(seen, 1))
    }
}
