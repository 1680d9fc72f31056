import Foundation

// Experiments 6 and 7: where to put BatchNorm, and BatchNorm with Dropout.

extension Lab {
    var comparisonEpochs: Int { max(settings.epochs, settings.longEpochs / 2) }

    // MARK: 6. Placement

    func placement() throws -> ExperimentReport {
        let s = settings, n = s.manySeeds
        var rows: [[String]] = []
        var finals: [NormPlacement: [Double]] = [:]
        for placement in NormPlacement.allCases {
            for seed in 0..<UInt64(n) {
                let run = try trainRun(seedSpec(placement: placement), seed: seed, configuration: recipe(epochs: comparisonEpochs, seed: seed))
                for e in run.epochs {
                    rows.append([placement.rawValue, "\(seed)", "\(e.epoch)", cell(e.trainLoss), cell(e.testLoss), cell(e.testAccuracy), run.divergenceText])
                }
                finals[placement, default: []].append(run.finalAccuracy)
            }
        }
        try writeCSV("06-placement", header: ["placement", "seed", "epoch", "train_loss", "test_loss", "test_accuracy", "diverged"], rows: rows)
        let before = finals[.before]!, after = finals[.after]!
        let figure = "test accuracy: after \(Spread(after).formatted(2, scale: 100))% vs before \(Spread(before).formatted(2, scale: 100))%"
        return ExperimentReport(
            number: 6, slug: "06-placement", title: Self.titles[5],
            claim: "Originally applied before activation. Seems to work better after activation (as the inputs to learnable linear layer are controlled and unaffected by activation). Difference isn't drastic",
            question: "The lesson's before_block (Linear → BatchNorm → ReLU) against after_block (Linear → ReLU → BatchNorm) in the seed network: is 'after' better, and is the difference small?",
            verdicts: [
                ("after works better", Verdict(outcome: VerdictRule.compare(claimed: after, baseline: before, higherIsBetter: true), figure: figure,
                    rule: VerdictRule.compareRule("final test accuracy", seeds: seedText(n)))),
                ("difference isn't drastic (< 1 pp)", Verdict(outcome: VerdictRule.small(after, before, limit: 0.01),
                    figure: "|difference of means| \(_fixed(abs(Spread(after).mean - Spread(before).mean) * 100, 2)) pp",
                    rule: "holds when |mean(after) − mean(before)| < 1 percentage point; reversed when it exceeds 1 pp by more than 2 × the pooled std over \(seedText(n)); otherwise not shown")),
            ],
            settings: "\(seedSpec()) and the same with BatchNorm after each ReLU; \(dataText); \(comparisonEpochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; \(seedText(n))",
            notes: [])
    }

    // MARK: 7. Dropout with BatchNorm

    func dropout() throws -> ExperimentReport {
        let s = settings, n = s.manySeeds, p: Float = 0.2
        let configurations: [(String, NetworkSpec)] = [
            ("BatchNorm", seedSpec()),
            ("BatchNorm + Dropout", seedSpec(dropout: p)),
            ("Dropout", seedSpec(norm: .none, dropout: p)),
            // SELU's fixed point wants LeCun-normal variance 1/fan_in: PyTorch's uniform default has 1/(3·fan_in)
            ("BatchNorm + AlphaDropout (SELU)", seedSpec(activation: .selu, alphaDropout: p, initScale: Float(3).squareRoot())),
        ]
        var rows: [[String]] = []
        var finals: [String: [Double]] = [:], shift: [String: [Double]] = [:]
        for (name, spec) in configurations {
            for seed in 0..<UInt64(n) {
                let run = try trainRun(spec, seed: seed, configuration: recipe(epochs: comparisonEpochs, seed: seed), evaluateEveryEpoch: false)
                let ratio = run.divergedAt == nil ? try varianceShift(run.network) : .nan
                rows.append([name, "\(seed)", cell(run.finalAccuracy), cell(run.finalTestLoss), cell(ratio), run.divergenceText])
                finals[name, default: []].append(run.finalAccuracy)
                shift[name, default: []].append(abs(log(ratio)))
            }
        }
        try writeCSV("07-dropout", header: ["configuration", "seed", "test_accuracy", "test_loss", "eval_var_over_running_var", "diverged"], rows: rows)
        let bn = finals["BatchNorm"]!, bnDrop = finals["BatchNorm + Dropout"]!, alpha = finals["BatchNorm + AlphaDropout (SELU)"]!
        func pct(_ v: [Double]) -> String { Spread(v).formatted(2, scale: 100) + "%" }
        func ratioText(_ name: String) -> String { "e^±\(Spread(shift[name]!).formatted(3))" }
        return ExperimentReport(
            number: 7, slug: "07-dropout", title: Self.titles[6],
            claim: "Dropout randomizes statistics gathered by BatchNorm. Alternative (so called AlphaDropout which preserves the statistics is available), so it is feasible. We rarely use ANY Dropout in tandem with BatchNorm! (it might actually make your scores worse!)",
            question: "Does adding Dropout (p = \(p)) to a BatchNorm network lower its accuracy, does it shift the variance the second BatchNorm sees in eval mode away from its running variance, and does AlphaDropout with SELU do better?",
            verdicts: [
                ("Dropout makes BatchNorm's scores worse", Verdict(outcome: VerdictRule.compare(claimed: bn, baseline: bnDrop, higherIsBetter: true),
                    figure: "BatchNorm \(pct(bn)) vs BatchNorm + Dropout \(pct(bnDrop)); Dropout alone \(pct(finals["Dropout"]!))",
                    rule: VerdictRule.compareRule("final test accuracy", seeds: seedText(n)))),
                ("Dropout shifts the variance BatchNorm sees", Verdict(
                    outcome: VerdictRule.compare(claimed: shift["BatchNorm + Dropout"]!, baseline: shift["BatchNorm"]!, higherIsBetter: true),
                    figure: "eval variance / running variance of the 2nd BatchNorm's input: with Dropout \(ratioText("BatchNorm + Dropout")) vs without \(ratioText("BatchNorm"))",
                    rule: VerdictRule.compareRule("|ln(eval-mode variance / running_var)| averaged over the features of the second BatchNorm", seeds: seedText(n)))),
                ("AlphaDropout (SELU) beats Dropout with BatchNorm", Verdict(outcome: VerdictRule.compare(claimed: alpha, baseline: bnDrop, higherIsBetter: true),
                    figure: "BatchNorm + AlphaDropout (SELU) \(pct(alpha)) vs BatchNorm + Dropout \(pct(bnDrop))",
                    rule: VerdictRule.compareRule("final test accuracy", seeds: seedText(n)))),
            ],
            settings: "\(seedSpec()) with Dropout/AlphaDropout p = \(p) after every hidden block; the SELU network's weights × √3 (LeCun variance); \(dataText); \(comparisonEpochs) epochs, batch 128, SGD lr 0.1 momentum 0.9; \(seedText(n))",
            notes: [])
    }

    /// Mean over the second hidden block's BatchNorm features of (variance of its
    /// input in eval mode on up to 2000 test samples) / running_var; NaN without
    /// a BatchNorm there. The first block when the network has one.
    func varianceShift(_ network: FeedForwardNetwork) throws -> Double {
        let block = min(1, network.blocks.count - 1)
        guard block >= 0, let index = network.blocks[block].norm, let bn = network.layers.layers[index] as? _BatchNorm,
              let running = bn.runningVar else { return .nan }
        let m = min(2000, test.count), f = test.featureCount
        let x = try Tensor(shape: [m, f], scalars: Array(test.features[..<(m * f)]))
        let wasTraining = network.isTraining, wasProbing = network.probesEnabled
        network.eval(); network.probesEnabled = true
        defer { network.setTraining(wasTraining); network.probesEnabled = wasProbing }
        _ = try network.forward(x)
        guard let input = network.normInput(block: block) else { return .nan }
        let variances = ValueStatistics.columns(of: input).variances
        let runningValues = running.scalars
        let ratios = zip(variances, runningValues).map { $0 / Double(max($1, 1e-12)) }
        return ratios.reduce(0, +) / Double(max(ratios.count, 1))
    }
}
